# shellcheck shell=bash
# The secured setup of start.sh --secure, sourced by start.sh (not run on its own).
#
# STATE_DIR/tls/ holds, made with openssl on the first start:
#   ca.pem, ca.key            the test CA (EC P-256, 10 years) that signs everything below
#   broker.keystore.pem       the brokers' key and certificate (PEM keystore, KIP-651): SAN
#                             DNS:localhost, IP:127.0.0.1; subject CN=admin, the one super user,
#                             so brokers are trusted on the inter-broker and controller listeners
#   USER.pem, USER.key        a client certificate (CN=USER) for mTLS on the SSL listener
#   USER.password             USER's SCRAM-SHA-512 password, created at format time
#   USER.env                  KAFKA_* settings for USER over SASL_SSL (SCRAM-SHA-512)
#   USER-mtls.env             KAFKA_* settings for USER over SSL with its client certificate
# for USER in admin and each stage's principal (collector, processor, exporter, audit).
# STATE_DIR/clients.env names the bootstrap of each listener and the CA file.
#
# The SASL_SSL listener also takes OAUTHBEARER with unsigned JWTs (alg "none", principal = sub),
# validated by Kafka's unsecured validator: a test setup, see secure_properties.
#
# ssl.principal.mapping.rules takes a certificate's CN as the principal, so User:collector is
# the same principal whether it logs in with SCRAM or with its certificate, and one set of ACLs
# (infra/kafka/acls.ts) covers both listeners.

secure_users=(admin collector processor exporter audit)

# One certificate signed by DIR/ca.pem: NAME.key and NAME.pem, subject CN=CN, optional SAN.
issue_certificate() { # DIR NAME CN [SAN]
  local dir="$1" name="$2" cn="$3" san="${4:-}" ext
  ext="$(mktemp)"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [[ -z "$san" ]] || echo "subjectAltName=$san"
  } >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 825 -sha256 -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
  chmod 600 "$dir/$name.key"
}

# Makes STATE_DIR/tls (once): CA, broker keystore, client certificates, passwords, env files.
make_secure_material() { # STATE_DIR
  local tls="$1/tls" user
  [[ ! -f "$tls/ca.pem" ]] || return 0
  echo "start.sh: making a CA, broker and client certificates and SCRAM passwords in $tls" >&2
  mkdir -p "$tls.tmp"
  chmod 700 "$tls.tmp"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$tls.tmp/ca.key" -out "$tls.tmp/ca.pem" -days 3650 -sha256 \
    -subj "/CN=vfio-telemetry local CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 600 "$tls.tmp/ca.key"
  issue_certificate "$tls.tmp" broker admin "DNS:localhost,IP:127.0.0.1"
  cat "$tls.tmp/broker.key" "$tls.tmp/broker.pem" >"$tls.tmp/broker.keystore.pem"
  chmod 600 "$tls.tmp/broker.keystore.pem"
  rm -f "$tls.tmp/broker.key" "$tls.tmp/broker.pem"
  for user in "${secure_users[@]}"; do
    issue_certificate "$tls.tmp" "$user" "$user"
    (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' >"$tls.tmp/$user.password")
  done
  rm -f "$tls.tmp/ca.srl"
  mv "$tls.tmp" "$tls"
}

# Writes USER.env, USER-mtls.env and STATE_DIR/clients.env for the listeners' bootstrap lists.
write_client_settings() { # STATE_DIR SASL_SSL_BOOTSTRAP SSL_BOOTSTRAP
  local tls="$1/tls" user
  for user in "${secure_users[@]}"; do
    cat >"$tls/$user.env" <<ENV
KAFKA_BROKERS=$2
KAFKA_SECURITY_PROTOCOL=SASL_SSL
KAFKA_SASL_MECHANISM=SCRAM-SHA-512
KAFKA_SASL_USERNAME=$user
KAFKA_SASL_PASSWORD_FILE=$tls/$user.password
KAFKA_TLS_CA_FILE=$tls/ca.pem
ENV
    cat >"$tls/$user-mtls.env" <<ENV
KAFKA_BROKERS=$3
KAFKA_SECURITY_PROTOCOL=SSL
KAFKA_TLS_CA_FILE=$tls/ca.pem
KAFKA_TLS_CERT_FILE=$tls/$user.pem
KAFKA_TLS_KEY_FILE=$tls/$user.key
ENV
  done
  cat >"$1/clients.env" <<ENV
# Written by infra/kafka/start.sh --secure. Per-principal settings: $tls/USER.env (SASL_SSL,
# SCRAM-SHA-512) and $tls/USER-mtls.env (SSL, client certificate), USER in ${secure_users[*]}.
KAFKA_BOOTSTRAP_SASL_SSL=$2
KAFKA_BOOTSTRAP_SSL=$3
KAFKA_TLS_CA_FILE=$tls/ca.pem
KAFKA_SECURE_USERS="${secure_users[*]}"
ENV
}

# `kafka-storage format --add-scram` arguments: every user's SCRAM-SHA-512 credential.
scram_format_args() { # STATE_DIR
  local user
  for user in "${secure_users[@]}"; do
    printf '%s\n' --add-scram "SCRAM-SHA-512=[name=$user,password=$(<"$1/tls/$user.password")]"
  done
}

# The server.properties lines of a secured node (listeners are the caller's).
secure_properties() { # TLS_DIR
  cat <<PROPS
# Secured (start.sh --secure): SASL_SSL with SCRAM-SHA-512 for clients with a password, SSL with
# a required client certificate for clients with one; brokers talk to each other and to the
# controllers over SSL with their own certificate (CN=admin, the super user).
listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:SSL
inter.broker.listener.name=SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,OAUTHBEARER
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# OAUTHBEARER for TESTS ONLY: with no sasl.server.callback.handler.class (and no
# sasl.oauthbearer.jwks.endpoint.url) Kafka validates tokens with its unsecured JWS validator,
# which accepts any unsigned (alg "none") JWT whose exp has not passed; the principal is its sub.
# Production sets the JWKS endpoint of its identity provider (docs/operations.md). Sessions
# last until the token's exp, at most 10 s: the client logs in again with the token file's
# current token (KIP-368), and an expired token is not kept for long.
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="admin";
listener.name.sasl_ssl.oauthbearer.connections.max.reauth.ms=10000
ssl.keystore.type=PEM
ssl.keystore.location=$1/broker.keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$1/ca.pem
ssl.client.auth=required
listener.name.sasl_ssl.ssl.client.auth=none
ssl.endpoint.identification.algorithm=https
ssl.principal.mapping.rules=RULE:^CN=([a-zA-Z0-9.-]*).*\$/\$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
PROPS
}
