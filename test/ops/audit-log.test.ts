// The hash-chained audit log on a real SQLite file: appends chain, verification names the first broken entry.
import { describe, expect, test } from 'vitest';
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appendAudit, GENESIS_HASH, listAudit, migrateAudit, verifyAudit } from '../../server/ops/audit.ts';
import { createToken, findToken, migrateTokens, revokeToken } from '../../server/ops/tokens.ts';

function freshDb() {
  const db = new Database(join(mkdtempSync(join(tmpdir(), 'tt-audit-')), 'relay.db'));
  migrateAudit(db);
  migrateTokens(db);
  return db;
}

describe('audit log', () => {
  test('each entry commits to the hash of the one before, starting from the genesis hash', () => {
    const db = freshDb();
    const a = appendAudit(db, { actor: 'op', action: 'job.approve', jobId: 'j1', detail: { from: 'pending' } }, 1000);
    const b = appendAudit(db, { actor: 'relay', action: 'round.accept', jobId: 'j1', detail: { version: 1, updates: ['u1', 'u2'] } }, 2000);
    expect(a.prevHash).toBe(GENESIS_HASH);
    expect(b.prevHash).toBe(a.hash);
    expect(a.hash).not.toBe(b.hash);
    expect(listAudit(db).map((e) => e.seq)).toEqual([1, 2]);
    expect(listAudit(db, { jobId: 'j1', afterSeq: 1 })[0].detail).toEqual({ version: 1, updates: ['u1', 'u2'] });
    expect(verifyAudit(db)).toEqual({ ok: true, entries: 2, headHash: b.hash });
  });

  test('editing one entry in the database makes verification fail at exactly that entry', () => {
    const db = freshDb();
    for (let i = 0; i < 5; i++) appendAudit(db, { actor: 'op', action: 'job.pause', jobId: `j${i}`, detail: { i } }, 1000 + i);
    db.prepare("UPDATE ops_audit SET detail = '{\"i\":99}' WHERE seq = 3").run();
    const v = verifyAudit(db);
    expect(v.ok).toBe(false);
    if (!v.ok) {
      expect(v.brokenSeq).toBe(3);
      expect(v.reason).toMatch(/entry 3 .*changed/);
    }
  });

  test('a changed hash is caught at its entry, a deleted entry at the one after the gap', () => {
    const db = freshDb();
    for (let i = 0; i < 4; i++) appendAudit(db, { actor: 'op', action: 'job.pause', detail: { i } }, 1000 + i);
    db.prepare("UPDATE ops_audit SET hash = 'ab' || substr(hash, 3) WHERE seq = 2").run();
    const v = verifyAudit(db);
    expect(v.ok ? 0 : v.brokenSeq).toBe(2);
    db.prepare('DELETE FROM ops_audit WHERE seq = 2').run();
    const w = verifyAudit(db);
    expect(w.ok ? 0 : w.brokenSeq).toBe(3);
  });
});

describe('API tokens', () => {
  test('a token is found by its secret until revoked, its creation is audited, and the secret is not stored', () => {
    const db = freshDb();
    const t = createToken(db, { role: 'researcher', name: 'ada', actor: 'cli:data-dir' });
    expect(t.token).toMatch(/^tt_/);
    expect(findToken(db, t.token)).toEqual({ tokenId: t.id, role: 'researcher', name: 'ada' });
    expect(findToken(db, t.token + 'x')).toBeUndefined();
    const raw = JSON.stringify(db.prepare('SELECT * FROM ops_tokens').all());
    expect(raw).not.toContain(t.token);
    expect(revokeToken(db, t.id, 'op')).toBe(true);
    expect(findToken(db, t.token)).toBeUndefined();
    expect(listAudit(db).map((e) => e.action)).toEqual(['token.create', 'token.revoke']);
    expect(verifyAudit(db).ok).toBe(true);
  });
});
