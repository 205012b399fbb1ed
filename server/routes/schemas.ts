// Route-local re-exports so route files import schemas and Static from one place.
export * from '../../shared/protocol/messages.ts';
export type { Static } from '@sinclair/typebox';
import { Type } from '@sinclair/typebox';
export const JobParams = Type.Object({ jobId: Type.String({ minLength: 1, maxLength: 128 }) });
export const TaskParams = Type.Object({ taskId: Type.String({ minLength: 1, maxLength: 128 }) });
export const ManifestQuery = Type.Object({ from: Type.Optional(Type.Integer({ minimum: 0 })) }, { additionalProperties: false });
export const VersionParams = Type.Object({ jobId: Type.String({ minLength: 1, maxLength: 128 }), version: Type.Integer({ minimum: 0 }) });
export const ShardParams = Type.Object({ jobId: Type.String({ minLength: 1, maxLength: 128 }), shard: Type.Integer({ minimum: 0 }) });
