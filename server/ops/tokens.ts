// API tokens for researchers and operators. Only a token's sha-256 is stored, so a copy of the database
// does not hand out working credentials; the secret is shown once, when it is created.
import { createHash, randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { appendAudit } from './audit.ts';
import { migrateTokenTable, sqliteOps } from '../store/sqlite-ops.ts';
import { ROLES, type Role } from '../store/ops-types.ts';

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

/** The principal a bearer secret belongs to, or undefined when it is unknown or revoked. */
export function findToken(db: Database.Database, secret: string): Principal | undefined {
  const row = sqliteOps(db).findToken(hashSecret(secret));
  return row && { tokenId: row.id, role: row.role, name: row.name };
}

export function listTokens(db: Database.Database): { id: string; role: Role; name: string; createdAt: number; revokedAt: number | null }[] {
  return sqliteOps(db).listTokens();
}
