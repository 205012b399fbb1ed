// The pages' calls to the relay's operator API, with the token a person pasted (kept in localStorage).
const KEY = 'tabtrain.token';

export const savedToken = (): string => localStorage.getItem(KEY) ?? '';
export const saveToken = (t: string) => localStorage.setItem(KEY, t.trim());

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message); }
}

export async function api<T = any>(path: string, init: RequestInit & { token?: string } = {}): Promise<T> {
  const headers = new Headers(init.headers);
  const token = init.token ?? savedToken();
  if (token) headers.set('authorization', `Bearer ${token}`);
  if (typeof init.body === 'string') headers.set('content-type', 'application/json');
  const res = await fetch(path, { ...init, headers });
  const body = await res.json().catch(() => undefined);
  if (!res.ok) throw new ApiError(res.status, body?.error?.code ?? 'TT_ERR_HTTP', body?.error?.message ?? `HTTP ${res.status}`);
  return body as T;
}
