/**
 * Grants and revokes the stages' ACLs (kafka/core/acls.ts) through the Admin API
 * (CreateAcls/DeleteAcls), as the super user whose settings `options` carry.
 */
import {
  Admin,
  AclOperations,
  AclPermissionTypes,
  ResourcePatternTypes,
  ResourceTypes,
  type Acl,
} from '@platformatic/kafka';
import type { StageAcl } from '../core/acls.ts';
import { baseOptions, observeClient, type KafkaClientOptions } from './base-options.ts';
import { mapKafkaFailure } from './errors.ts';

function toAcl(acl: StageAcl): Acl {
  return {
    resourceType: ResourceTypes[acl.resourceType],
    resourceName: acl.resourceName,
    resourcePatternType: ResourcePatternTypes[acl.patternType],
    principal: acl.principal,
    host: '*',
    operation: AclOperations[acl.operation],
    permissionType: AclPermissionTypes.ALLOW,
  };
}

async function withAdmin<T>(
  options: KafkaClientOptions,
  fn: (admin: Admin) => Promise<T>,
): Promise<T> {
  const admin = new Admin(baseOptions(options, 'acl-admin'));
  observeClient(admin, options.logger.child({ component: 'kafka-acl-admin' }));
  try {
    return await fn(admin);
  } finally {
    await admin.close().catch(() => undefined);
  }
}

/** Creates the bindings (creating one that exists is a no-op for Kafka). */
export async function grantAcls(
  options: KafkaClientOptions,
  acls: readonly StageAcl[],
): Promise<void> {
  if (acls.length === 0) return;
  await withAdmin(options, (admin) =>
    mapKafkaFailure('Creating ACLs failed.', () =>
      admin.createAcls({ creations: acls.map(toAcl) }),
    ),
  );
}

/** Deletes exactly these bindings; returns how many Kafka removed. */
export async function revokeAcls(
  options: KafkaClientOptions,
  acls: readonly StageAcl[],
): Promise<number> {
  if (acls.length === 0) return 0;
  return withAdmin(options, async (admin) => {
    const deleted = await mapKafkaFailure('Deleting ACLs failed.', () =>
      admin.deleteAcls({ filters: acls.map(toAcl) }),
    );
    return deleted.length;
  });
}
