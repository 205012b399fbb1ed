// Which database the relay runs on: the embedded SQLite file (the default) or a Postgres server that
// several relays share (TABTRAIN_DATABASE_URL or `tabtrain start --database-url`). /healthz asks it
// whether it answers.
export type DatabaseKind = 'sqlite' | 'postgres';

export type DatabaseProbe = {
  readonly kind: DatabaseKind;
  /** resolves when the database answers a trivial query, rejects with its error otherwise */
  ping(): Promise<void>;
};

/** Where to run: a Postgres URL when given (flag first, then environment), else SQLite. */
export function databaseUrlFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const url = flag ?? env.TABTRAIN_DATABASE_URL;
  return url === undefined || url === '' ? undefined : url;
}

/** Refuses anything but a postgres:// (or postgresql://) URL, naming the flag and the form it takes. */
export function checkDatabaseUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--database-url (or TABTRAIN_DATABASE_URL) is not a URL: give postgres://user[:password]@host[:port]/database`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new Error(`--database-url (or TABTRAIN_DATABASE_URL) must start with postgres://, got "${u.protocol}//…"; leave it unset for the embedded SQLite database`);
  }
  return url;
}

/** A URL with its password replaced, for logs and answers. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** The embedded file's probe: a trivial query on its handle. */
export const sqliteProbe = (db: { prepare(sql: string): { get(): unknown } }): DatabaseProbe => ({
  kind: 'sqlite', ping: async () => { db.prepare('SELECT 1').get(); },
});
