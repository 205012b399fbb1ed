// Shared-memory tiled matmul for real GPUs: each workgroup stages a TM×TILE_K tile of op(A) and a
// TILE_K×TN tile of op(B) in workgroup memory (loaded cooperatively, coalesced along each operand's
// contiguous axis, zero-filled past the edges), then every thread multiplies out a 4×4 register block
// from those tiles, so each value is read from global memory once per workgroup, not once per thread. Same Params, bindings
// and epilogues as the register-tiled kernel (matmul-common.ts), same three variants (A·B, Aᵀ·B, A·Bᵀ).
// The workgroup shape and TILE_K are override constants; a thread's block stays 4×4 (function-scope
// arrays cannot be override-sized), so TM = 4·WG_Y and TN = 4·WG_X. On SwiftShader this kernel is
// correct but slow (barriers are coroutine switches); policy.ts keeps it off CPU adapters.
import type { Dispatch, Gpu } from '../device.ts';
import { Epi, matmulBindings, matmulHeaderWgsl, type MatmulArgs } from './matmul-common.ts';

/** Rows and columns of C per thread (fixed: they size the per-thread registers). */
export const blockM = 4, blockN = 4;

/** Workgroup shape in threads (x along N, y along M) and the K depth of one staged tile. */
export type SharedTile = { wgX: number; wgY: number; tileK: number };
/** 16×16 threads, 64×64 outputs per workgroup, K tiles of 16: about 8 KiB of workgroup memory. */
export const defaultSharedTile: SharedTile = { wgX: 16, wgY: 16, tileK: 16 };

const rows = (f: (i: number) => string, sep = '\n    ') => Array.from({ length: blockM }, (_, i) => f(i)).join(sep);

export const matmulSharedWgsl = /* wgsl */ `
${matmulHeaderWgsl}
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override EPI: u32 = 0u;
override WG_X: u32 = ${defaultSharedTile.wgX}u;
override WG_Y: u32 = ${defaultSharedTile.wgY}u;
override TILE_K: u32 = ${defaultSharedTile.tileK}u;
override TM: u32 = WG_Y * ${blockM}u;
override TN: u32 = WG_X * ${blockN}u;

// Rows are padded by one word: the transposing loads (A row-major, Bᵀ) write down a column, and a
// stride of 64 words would put every thread of a warp on the same memory bank.
override SA: u32 = TM + 1u;
override SB: u32 = TN + 1u;
var<workgroup> As: array<f32, SA * TILE_K>; // [k][m]
var<workgroup> Bs: array<f32, TILE_K * SB>; // [k][n]

fn ldA(m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  if (TRANS_A) { return A[p.offA + k * p.lda + m]; }
  return A[p.offA + m * p.lda + k];
}
fn ldB(k: u32, n: u32) -> f32 {
  if (k >= p.K || n >= p.N) { return 0.0; }
  if (TRANS_B) { return B[p.offB + n * p.ldb + k]; }
  return B[p.offB + k * p.ldb + n];
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * TM;
  let n0 = wid.x * TN;
  let threads = WG_X * WG_Y;
  // A thread's outputs are strided by the workgroup shape (rows lid.y + i·WG_Y, columns lid.x + j·WG_X),
  // so neighbouring threads read neighbouring workgroup words and store neighbouring columns.
  ${rows((i) => `var acc${i} = vec4f();`, ' ')}
  for (var k0 = 0u; k0 < p.K; k0 += TILE_K) {
    // Consecutive threads load consecutive addresses of each operand's contiguous axis.
    for (var i = li; i < TM * TILE_K; i += threads) {
      var m = i / TILE_K; var k = i % TILE_K;
      if (TRANS_A) { m = i % TM; k = i / TM; }
      As[k * SA + m] = ldA(m0 + m, k0 + k);
    }
    for (var i = li; i < TILE_K * TN; i += threads) {
      var n = i % TN; var k = i / TN;
      if (TRANS_B) { n = i / TILE_K; k = i % TILE_K; }
      Bs[k * SB + n] = ldB(k0 + k, n0 + n);
    }
    workgroupBarrier();
    for (var k = 0u; k < TILE_K; k++) {
      let ra = k * SA + lid.y;
      let rb = k * SB + lid.x;
      let b = vec4f(Bs[rb], Bs[rb + WG_X], Bs[rb + 2u * WG_X], Bs[rb + 3u * WG_X]);
      ${rows((i) => `acc${i} += As[ra + ${i}u * WG_Y] * b;`)}
    }
    workgroupBarrier();
  }
  ${rows((i) => `store4(m0 + lid.y + ${i}u * WG_Y, n0 + lid.x, acc${i});`, '\n  ')}
}
fn store4(r: u32, c: u32, v: vec4f) {
  store1(r, c, v.x); store1(r, c + WG_X, v.y); store1(r, c + 2u * WG_X, v.z); store1(r, c + 3u * WG_X, v.w);
}`;

function checkTile(gpu: Gpu, t: SharedTile): void {
  const lim = gpu.device.limits;
  for (const [k, v] of Object.entries(t)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`shared matmul tile.${k} must be a positive integer, got ${v}`);
  }
  if (t.wgX * t.wgY > lim.maxComputeInvocationsPerWorkgroup || t.wgX > lim.maxComputeWorkgroupSizeX || t.wgY > lim.maxComputeWorkgroupSizeY) {
    throw new Error(`shared matmul tile ${t.wgX}×${t.wgY} threads exceeds this device's workgroup limits (at most ${lim.maxComputeInvocationsPerWorkgroup} invocations)`);
  }
  const bytes = 4 * t.tileK * (blockM * t.wgY + blockN * t.wgX + 2);
  if (bytes > lim.maxComputeWorkgroupStorageSize) {
    throw new Error(`shared matmul tile needs ${bytes} bytes of workgroup memory; this device allows ${lim.maxComputeWorkgroupStorageSize}: lower tileK`);
  }
}

/** The shared-memory kernel regardless of policy (tests and benches pass smaller tiles). */
export async function matmulShared(gpu: Gpu, a: MatmulArgs, name = 'matmul', tile: SharedTile = defaultSharedTile): Promise<Dispatch> {
  checkTile(gpu, tile);
  const epi = a.epi ?? Epi.none;
  const bindings = matmulBindings(gpu, a, name);
  const pipeline = await gpu.pipeline('matmulShared', matmulSharedWgsl, {
    TRANS_A: a.transA ? 1 : 0, TRANS_B: a.transB ? 1 : 0, EPI: epi, WG_X: tile.wgX, WG_Y: tile.wgY, TILE_K: tile.tileK,
  });
  const tm = blockM * tile.wgY, tn = blockN * tile.wgX;
  return gpu.dispatch(name, pipeline, bindings, [Math.ceil(a.N / tn), Math.ceil(a.M / tm)]);
}
