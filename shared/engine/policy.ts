// Which kernel variant runs where, decided in one place. Real GPUs get the workgroup-shared-memory
// matmul (the standard fast path there); SwiftShader and other CPU/fallback adapters get the
// register-tiled one, because barriers there are coroutine switches (~100× slower, see matmul.ts).
// Subgroup reductions are used wherever the device was created with the `subgroups` feature.
// Tests and benches can force either choice. shader-f16 is deliberately not used: every kernel here
// is training math (matmul accumulations, AdamW moments, norms), where fp16's 11-bit mantissa would
// move the losses and Δ that replicas are compared on; the device only requests the feature.
import type { Device } from './device.ts';

export type MatmulKind = 'register' | 'shared';
export type KernelPolicy = {
  /** 'shared': workgroup-memory tiles (real GPUs); 'register': barrier-free register tiles (CPU adapters). */
  matmul: MatmulKind;
  /** Use subgroupAdd in reductions (needs the device feature `subgroups`); fp32 fallback otherwise. */
  subgroups: boolean;
};

/** True for adapters that run on the CPU, where shared-memory barriers are slow. */
export function isCpuAdapter(dev: Pick<Device, 'adapterInfo' | 'isFallback'>): boolean {
  const arch = dev.adapterInfo.architecture.toLowerCase();
  const desc = dev.adapterInfo.description.toLowerCase();
  return dev.isFallback || arch === 'swiftshader' || /swiftshader|llvmpipe|lavapipe|warp/.test(desc);
}

/** The default policy for a device, with `override` applied; an impossible override is refused. */
export function choosePolicy(dev: Pick<Device, 'adapterInfo' | 'isFallback' | 'features'>, override: Partial<KernelPolicy> = {}): KernelPolicy {
  const { matmul, subgroups } = override;
  if (matmul !== undefined && matmul !== 'register' && matmul !== 'shared') {
    throw new Error(`policy.matmul must be 'register' or 'shared', got ${JSON.stringify(matmul)}`);
  }
  if (subgroups && !dev.features.subgroups) {
    throw new Error("policy.subgroups is true but this device has no 'subgroups' feature: leave it unset to use the fp32 fallback");
  }
  return {
    matmul: matmul ?? (isCpuAdapter(dev) ? 'register' : 'shared'),
    subgroups: subgroups ?? dev.features.subgroups,
  };
}
