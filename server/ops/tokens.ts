// API tokens for researchers and operators. Only a token's sha-256 is stored, so a copy of the database
// does not hand out working credentials; the secret is shown once, when it is created.
import { createHash, randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { appendAudit } from './audit.ts';
import { migrateTokenTable, sqliteOps } from '../store/sqlite-ops.ts';
import { ROLES, type OpsStore, type Role } from '../store/ops-types.ts';
import type { Stores } from '../store/types.ts';

export { ROLES, type Role };

/** Who is calling: the token's id (never its secret), role and human-readable name. */
export type Principal = { tokenId: string; role: Role; name: string };

export const migrateTokens = (db: Database.Database): void => migrateTokenTable(db);

export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

export function isRole(x: unknown): x is Role {
  return typeof x === 'string' && (ROLES as readonly string[]).includes(x);
}

/** Creates a token and audits it; `actor` is who asked (a token id, or "cli:data-dir" for direct DB access). */
export function createToken(db: Database.Database, opts: { role: Role; name: string; actor: string }, now = Date.now()): { id: string; token: string; role: Role; name: string } {
  const id = 'tok_' + randomBytes(6).toString('hex');
  const token = 'tt_' + randomBytes(24).toString('base64url');
  sqliteOps(db).insertToken({ id, secretHash: hashSecret(token), role: opts.role, name: opts.name }, now);
  appendAudit(db, { actor: opts.actor, action: 'token.create', detail: { tokenId: id, role: opts.role, name: opts.name } }, now);
  return { id, token, role: opts.role, name: opts.name };
}

export function revokeToken(db: Database.Database, id: string, actor: string, now = Date.now()): boolean {
  const changed = sqliteOps(db).revokeToken(id, now);
  if (changed) appendAudit(db, { actor, action: 'token.revoke', detail: { tokenId: id } }, now);
  return changed;
}

/** The principal a bearer secret belongs to, or undefined when it is unknown or revoked. `from`: the
 * relay's operator store, or a SQLite file's handle (offline tools, tests). */
export function findToken(from: OpsStore, secret: string): Promise<Principal | undefined>;
export function findToken(from: Database.Database, secret: string): Principal | undefined;
export function findToken(from: OpsStore | Database.Database, secret: string): Principal | undefined | Promise<Principal | undefined> {
  const principal = (row: { id: string; role: Role; name: string } | undefined) => row && { tokenId: row.id, role: row.role, name: row.name };
  if ('findToken' in from) return from.findToken(hashSecret(secret)).then(principal);
  return principal(sqliteOps(from).findToken(hashSecret(secret)));
}

/** Creates a token and audits it, in one transaction of the relay's stores. */
export async function createTokenIn(stores: Stores, opts: { role: Role; name: string; actor: string }, now = Date.now()): Promise<{ id: string; token: string; role: Role; name: string }> {
  const id = 'tok_' + randomBytes(6).toString('hex');
  const token = 'tt_' + randomBytes(24).toString('base64url');
  await stores.transaction(async (tx) => {
    await tx.ops.insertToken({ id, secretHash: hashSecret(token), role: opts.role, name: opts.name }, now);
    await tx.ops.appendAudit({ actor: opts.actor, action: 'token.create', detail: { tokenId: id, role: opts.role, name: opts.name } }, now);
  });
  return { id, token, role: opts.role, name: opts.name };
}

/** Revokes a live token and audits it, in one transaction; false when there is none with that id. */
export async function revokeTokenIn(stores: Stores, id: string, actor: string, now = Date.now()): Promise<boolean> {
  return stores.transaction(async (tx) => {
    const changed = await tx.ops.revokeToken(id, now);
    if (changed) await tx.ops.appendAudit({ actor, action: 'token.revoke', detail: { tokenId: id } }, now);
    return changed;
  });
}

export function listTokens(db: Database.Database): { id: string; role: Role; name: string; createdAt: number; revokedAt: number | null }[] {
  return sqliteOps(db).listTokens();
}
