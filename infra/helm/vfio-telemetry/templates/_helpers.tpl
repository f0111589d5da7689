{{- define "vfio-telemetry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name; the component names add at most 10 characters to it. */}}
{{- define "vfio-telemetry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "vfio-telemetry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "vfio-telemetry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one stage: (dict "root" $ "component" "collector"). */}}
{{- define "vfio-telemetry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vfio-telemetry.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one stage's objects; `vfio-telemetry/job` names its Prometheus job. */}}
{{- define "vfio-telemetry.componentLabels" -}}
{{ include "vfio-telemetry.labels" .root }}
app.kubernetes.io/component: {{ .component }}
vfio-telemetry/job: vfio-{{ .component }}
{{- end -}}

{{- define "vfio-telemetry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vfio-telemetry.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vfio-telemetry.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* HTTP or HTTPS: what the stages serve, for probes and the ServiceMonitor. */}}
{{- define "vfio-telemetry.scheme" -}}
{{- if .Values.webConfig.scheme -}}
{{- upper .Values.webConfig.scheme -}}
{{- else if hasKey .Values.webConfig.config "tls_server_config" -}}
HTTPS
{{- else -}}
HTTP
{{- end -}}
{{- end -}}

{{/* /readyz, or /healthz when basic auth would refuse kubelet's probe. */}}
{{- define "vfio-telemetry.readinessPath" -}}
{{- $basic := .Values.webConfig.basicAuth -}}
{{- if eq (toString $basic) "" -}}
{{- $basic = hasKey .Values.webConfig.config "basic_auth_users" -}}
{{- end -}}
{{- if eq (toString $basic) "true" -}}
/healthz
{{- else -}}
/readyz
{{- end -}}
{{- end -}}

{{- define "vfio-telemetry.webConfigSecret" -}}
{{- if .Values.webConfig.existingSecret -}}
{{- .Values.webConfig.existingSecret -}}
{{- else if .Values.webConfig.config -}}
{{- printf "%s-web-config" (include "vfio-telemetry.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* A stage's Kafka settings: the global ones with the stage's `kafka:` over them. */}}
{{- define "vfio-telemetry.kafka" -}}
{{- $stage := index .root.Values .stage -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.kafka) (deepCopy (default dict $stage.kafka))) -}}
{{- end -}}

{{/*
The environment every stage shares: Kafka (secrets by path), the web config, the HTTP server.
(dict "root" $ "stage" "collector" "prefix" "VFIO_COLLECTOR_")
*/}}
{{- define "vfio-telemetry.commonEnv" -}}
{{- $kafka := include "vfio-telemetry.kafka" . | fromYaml -}}
{{- $stage := index .root.Values .stage -}}
{{- if not $kafka.brokers }}
{{- fail "kafka.brokers: needs at least one HOST:PORT" }}
{{- end }}
- name: KAFKA_BROKERS
  value: {{ join "," $kafka.brokers | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ $kafka.securityProtocol | quote }}
{{- with $kafka.saslMechanism }}
- name: KAFKA_SASL_MECHANISM
  value: {{ . | quote }}
{{- end }}
{{- with $kafka.saslUsername }}
- name: KAFKA_SASL_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if $kafka.saslPasswordSecret.name }}
- name: KAFKA_SASL_PASSWORD_FILE
  value: /etc/vfio-telemetry/kafka/sasl-password
{{- end }}
{{- if $kafka.saslOauthbearerTokenSecret.name }}
- name: KAFKA_SASL_OAUTHBEARER_TOKEN_FILE
  value: /etc/vfio-telemetry/kafka/sasl-oauthbearer-token
{{- end }}
{{- if $kafka.tlsCaSecret.name }}
- name: KAFKA_TLS_CA_FILE
  value: /etc/vfio-telemetry/kafka/ca.crt
{{- end }}
{{- if $kafka.tlsClientSecret.name }}
- name: KAFKA_TLS_CERT_FILE
  value: /etc/vfio-telemetry/kafka/tls.crt
- name: KAFKA_TLS_KEY_FILE
  value: /etc/vfio-telemetry/kafka/tls.key
{{- end }}
{{- if include "vfio-telemetry.webConfigSecret" .root }}
- name: WEB_CONFIG_FILE
  value: /etc/vfio-telemetry/web/web-config.yml
{{- end }}
- name: {{ .prefix }}HTTP_HOST
  value: 0.0.0.0
- name: {{ .prefix }}HTTP_PORT
  value: {{ $stage.httpPort | quote }}
- name: {{ .prefix }}LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
{{- range $name, $value := $stage.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* The volumes behind commonEnv's files: Kafka secrets (one projected volume), web config. */}}
{{- define "vfio-telemetry.commonVolumes" -}}
{{- $kafka := include "vfio-telemetry.kafka" . | fromYaml -}}
{{- $sources := list -}}
{{- if $kafka.saslPasswordSecret.name -}}
{{- $sources = append $sources (dict "secret" (dict "name" $kafka.saslPasswordSecret.name "items" (list (dict "key" $kafka.saslPasswordSecret.key "path" "sasl-password")))) -}}
{{- end -}}
{{- if $kafka.saslOauthbearerTokenSecret.name -}}
{{- $sources = append $sources (dict "secret" (dict "name" $kafka.saslOauthbearerTokenSecret.name "items" (list (dict "key" $kafka.saslOauthbearerTokenSecret.key "path" "sasl-oauthbearer-token")))) -}}
{{- end -}}
{{- if $kafka.tlsCaSecret.name -}}
{{- $sources = append $sources (dict "secret" (dict "name" $kafka.tlsCaSecret.name "items" (list (dict "key" $kafka.tlsCaSecret.key "path" "ca.crt")))) -}}
{{- end -}}
{{- if $kafka.tlsClientSecret.name -}}
{{- $sources = append $sources (dict "secret" (dict "name" $kafka.tlsClientSecret.name "items" (list (dict "key" $kafka.tlsClientSecret.certKey "path" "tls.crt") (dict "key" $kafka.tlsClientSecret.keyKey "path" "tls.key")))) -}}
{{- end -}}
{{- if $sources }}
- name: kafka-secrets
  projected:
    defaultMode: 0440
    sources:
      {{- toYaml $sources | nindent 6 }}
{{- end }}
{{- with include "vfio-telemetry.webConfigSecret" .root }}
- name: web-config
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- with .root.Values.webConfig.tlsSecret }}
- name: web-tls
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "vfio-telemetry.commonVolumeMounts" -}}
{{- $kafka := include "vfio-telemetry.kafka" . | fromYaml -}}
{{- if or $kafka.saslPasswordSecret.name $kafka.saslOauthbearerTokenSecret.name $kafka.tlsCaSecret.name $kafka.tlsClientSecret.name }}
- name: kafka-secrets
  mountPath: /etc/vfio-telemetry/kafka
  readOnly: true
{{- end }}
{{- if include "vfio-telemetry.webConfigSecret" .root }}
- name: web-config
  mountPath: /etc/vfio-telemetry/web
  readOnly: true
{{- end }}
{{- if .root.Values.webConfig.tlsSecret }}
- name: web-tls
  mountPath: /etc/vfio-telemetry/web-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* Probes and port of a stage's HTTP server. */}}
{{- define "vfio-telemetry.httpContainer" -}}
{{- $stage := index .root.Values .stage -}}
ports:
  - name: http
    containerPort: {{ $stage.httpPort }}
    protocol: TCP
livenessProbe:
  httpGet:
    path: /healthz
    port: http
    scheme: {{ include "vfio-telemetry.scheme" .root }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  httpGet:
    path: {{ include "vfio-telemetry.readinessPath" .root }}
    port: http
    scheme: {{ include "vfio-telemetry.scheme" .root }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* A stage's pod and container security contexts: the chart's with the stage's over them. */}}
{{- define "vfio-telemetry.podSecurityContext" -}}
{{- $stage := index .root.Values .stage -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.podSecurityContext) (deepCopy $stage.podSecurityContext)) -}}
{{- end -}}

{{- define "vfio-telemetry.securityContext" -}}
{{- $stage := index .root.Values .stage -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.securityContext) (deepCopy $stage.securityContext)) -}}
{{- end -}}

{{/* What every stage's pod spec shares. */}}
{{- define "vfio-telemetry.podCommon" -}}
{{- $stage := index .root.Values .stage -}}
serviceAccountName: {{ include "vfio-telemetry.serviceAccountName" .root }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $stage.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
terminationGracePeriodSeconds: {{ $stage.terminationGracePeriodSeconds }}
{{- with $stage.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $stage.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $stage.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
