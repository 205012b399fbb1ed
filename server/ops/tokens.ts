// API tokens for researchers and operators. Only a token's sha-256 is stored, so a copy of the database
// does not hand out working credentials; the secret is shown once, when it is created.
import { createHash, randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { appendAudit } from './audit.ts';

export const ROLES = ['operator', 'researcher'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling: the token's id (never its secret), role and human-readable name. */
export type Principal = { tokenId: string; role: Role; name: string };

export function migrateTokens(db: Database.Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS ops_tokens (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('operator', 'researcher')),
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );`);
}

const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');

export function isRole(x: unknown): x is Role {
  return typeof x === 'string' && (ROLES as readonly string[]).includes(x);
}

/** Creates a token and audits it; `actor` is who asked (a token id, or "cli:data-dir" for direct DB access). */
export function createToken(db: Database.Database, opts: { role: Role; name: string; actor: string }, now = Date.now()): { id: string; token: string; role: Role; name: string } {
  const id = 'tok_' + randomBytes(6).toString('hex');
  const token = 'tt_' + randomBytes(24).toString('base64url');
  db.prepare('INSERT INTO ops_tokens (id, secret_hash, role, name, created_at) VALUES (?, ?, ?, ?, ?)').run(id, hashSecret(token), opts.role, opts.name, now);
  appendAudit(db, { actor: opts.actor, action: 'token.create', detail: { tokenId: id, role: opts.role, name: opts.name } }, now);
  return { id, token, role: opts.role, name: opts.name };
}

export function revokeToken(db: Database.Database, id: string, actor: string, now = Date.now()): boolean {
  const changed = db.prepare('UPDATE ops_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id).changes > 0;
  if (changed) appendAudit(db, { actor, action: 'token.revoke', detail: { tokenId: id } }, now);
  return changed;
}

/** The principal a bearer secret belongs to, or undefined when it is unknown or revoked. */
export function findToken(db: Database.Database, secret: string): Principal | undefined {
  const row = db.prepare('SELECT id, role, name FROM ops_tokens WHERE secret_hash = ? AND revoked_at IS NULL').get(hashSecret(secret)) as { id: string; role: Role; name: string } | undefined;
  return row && { tokenId: row.id, role: row.role, name: row.name };
}

export function listTokens(db: Database.Database): { id: string; role: Role; name: string; createdAt: number; revokedAt: number | null }[] {
  return (db.prepare('SELECT id, role, name, created_at, revoked_at FROM ops_tokens ORDER BY created_at').all() as { id: string; role: Role; name: string; created_at: number; revoked_at: number | null }[])
    .map((r) => ({ id: r.id, role: r.role, name: r.name, createdAt: r.created_at, revokedAt: r.revoked_at }));
}
