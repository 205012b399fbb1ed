// The pages' calls to the relay's operator API, with the token a person pasted (kept in localStorage).
import { isErrorCode, type AnyErrorCode } from '../../shared/protocol/errors.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '../../shared/protocol/version.ts';

const KEY = 'tabtrain.token';

export const savedToken = (): string => localStorage.getItem(KEY) ?? '';
export const saveToken = (t: string) => localStorage.setItem(KEY, t.trim());

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: AnyErrorCode, message: string) { super(message); }
}

export async function api<T = any>(path: string, init: RequestInit & { token?: string } = {}): Promise<T> {
  const headers = new Headers(init.headers);
  const token = init.token ?? savedToken();
  if (token) headers.set('authorization', `Bearer ${token}`);
  headers.set(PROTOCOL_HEADER, String(PROTOCOL_VERSION));
  if (typeof init.body === 'string') headers.set('content-type', 'application/json');
  const res = await fetch(path, { ...init, headers });
  const body = await res.json().catch(() => undefined);
  const code: unknown = body?.error?.code;
  if (!res.ok) throw new ApiError(res.status, isErrorCode(code) ? code : 'TT_CLIENT_UNKNOWN_ERROR', body?.error?.message ?? `HTTP ${res.status}`);
  return body as T;
}
