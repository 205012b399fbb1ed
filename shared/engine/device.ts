// The engine's one door to WebGPU: the adapter and device (limits sized to the model), a pipeline cache
// keyed by source and constants, tracked buffers, prebuilt dispatches (folded past 65,535 workgroups)
// and readback, and the kernel-selection policy (policy.ts) its kernels follow. No DOM, no Node API:
// the same code runs in a tab, a worker and Node (Dawn).
import { choosePolicy, type KernelPolicy } from './policy.ts';

export type Device = {
  device: GPUDevice;
  adapterInfo: { vendor: string; architecture: string; device: string; description: string };
  /** Optional features this device was created with (used only where present; fp32 always works). */
  features: { shaderF16: boolean; subgroups: boolean };
  /** The adapter says it is a fallback (software) adapter; see policy.ts. */
  isFallback: boolean;
  /** Held so the GPU instance outlives every device made from it (Dawn in Node tears down otherwise). */
  gpu: GPU;
  adapter: GPUAdapter;
};

/**
 * What a model needs from the adapter: its largest buffer that cannot be split (one binding), what it
 * would like in one binding if the adapter has it (the whole parameter vector, so it is not split),
 * and a label for errors.
 */
export type Needs = { storageBytes?: number; preferBytes?: number; what?: string };

/** Largest staging buffer a readback uses (a bigger read is done in pieces). */
export const readChunkBytes = 64 * 2 ** 20;

/** Largest number of workgroups WebGPU allows in one grid dimension. */
export const maxGroupsPerDim = 65_535;

export async function acquireDevice(gpu: GPU | undefined, needs: Needs = {}): Promise<Device> {
  if (!gpu) {
    throw new Error('WebGPU is not available here (navigator.gpu is missing): use a browser with WebGPU enabled, or Node with the npm package webgpu');
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('WebGPU found no adapter: no GPU driver, and no software fallback (SwiftShader) is installed');
  // Ask for what the model's largest buffer needs (at least WebGPU's default 128 MiB), and what it
  // prefers where the adapter has it; what is over the binding is split (param-segments.ts).
  const have = Math.min(adapter.limits.maxStorageBufferBindingSize, adapter.limits.maxBufferSize);
  const want = Math.max(needs.storageBytes ?? 0, Math.min(needs.preferBytes ?? 0, have), 128 * 2 ** 20);
  if ((needs.storageBytes ?? 0) > have) {
    throw new Error(`${needs.what ?? 'the model'} needs a ${needs.storageBytes}-byte storage buffer; this adapter allows at most ${have} `
      + `(maxStorageBufferBindingSize ${adapter.limits.maxStorageBufferBindingSize}, maxBufferSize ${adapter.limits.maxBufferSize})`);
  }
  const requiredFeatures: GPUFeatureName[] = [];
  // Optional speed-ups, requested only where the adapter has them; every kernel has an fp32 path.
  const shaderF16 = adapter.features.has('shader-f16');
  const subgroups = adapter.features.has('subgroups');
  if (shaderF16) requiredFeatures.push('shader-f16');
  if (subgroups) requiredFeatures.push('subgroups' as GPUFeatureName);
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: Math.min(want, adapter.limits.maxStorageBufferBindingSize),
      maxBufferSize: Math.min(want, adapter.limits.maxBufferSize),
      maxStorageBuffersPerShaderStage: Math.min(8, adapter.limits.maxStorageBuffersPerShaderStage),
    },
  });
  // GPU failures surface in one place, with what was being done.
  device.addEventListener('uncapturederror', (e) => {
    console.error(`WebGPU error: ${(e as GPUUncapturedErrorEvent).error.message}`);
  });
  void device.lost.then((info) => {
    if (info.reason !== 'destroyed') console.error(`WebGPU device lost (${info.reason}): ${info.message}`);
  });
  const info = adapter.info ?? ({} as GPUAdapterInfo);
  return {
    device,
    adapterInfo: { vendor: info.vendor ?? '', architecture: info.architecture ?? '', device: info.device ?? '', description: info.description ?? '' },
    features: { shaderF16, subgroups },
    // isFallbackAdapter moved from the adapter to its info; read either.
    isFallback: Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter),
    gpu,
    adapter,
  };
}

/** One recorded kernel launch: pipeline, bind group and grid, all built once and replayed every step. */
export type Dispatch = { name: string; pipeline: GPUComputePipeline; bindGroup: GPUBindGroup; grid: [number, number] };

/** Folds a 1-D workgroup count into x·y so no dimension exceeds 65,535 (shaders rebuild the index). */
export function foldGrid(groups: number): [number, number] {
  if (groups <= maxGroupsPerDim) return [Math.max(1, groups), 1];
  const y = Math.ceil(groups / maxGroupsPerDim);
  if (y > maxGroupsPerDim) throw new Error(`dispatch of ${groups} workgroups exceeds ${maxGroupsPerDim}² (the 2-D grid limit)`);
  return [maxGroupsPerDim, y];
}

/** WGSL helper every 1-D kernel uses to rebuild its flat index from a folded grid. */
export const flatIndexWgsl = /* wgsl */ `
fn flatGroup(wid: vec3u, nwg: vec3u) -> u32 { return wid.y * nwg.x + wid.x; }`;

export class Gpu {
  readonly device: GPUDevice;
  private buffers = new Set<GPUBuffer>();
  /** Bytes of the storage buffers this context holds (uniforms are counted apart: a few bytes per dispatch). */
  private storage = new Map<GPUBuffer, number>();
  uniformBytes = 0;
  /** Set once the device is lost; a lost context is never reused. */
  lost = false;

  /** Which kernel variants this context's builders emit (default: chosen from the adapter). */
  readonly policy: KernelPolicy;

  /** Largest storage buffer this context creates: the device's binding and buffer limits, or lower
   * where the engine is told to assume less (tests run the split-tensor paths at small sizes so). */
  readonly maxBindingBytes: number;

  constructor(readonly dev: Device, private pipelines = new Map<string, Promise<GPUComputePipeline>>(), policy?: Partial<KernelPolicy>, maxBindingBytes = Infinity) {
    this.device = dev.device;
    this.policy = choosePolicy(dev, policy);
    this.maxBindingBytes = Math.min(maxBindingBytes, this.device.limits.maxStorageBufferBindingSize, this.device.limits.maxBufferSize);
    void this.device.lost.then(() => { this.lost = true; });
  }

  /** Same device and pipeline cache, its own buffers (one per trainer, so destroy() frees only its own). */
  child(policy: Partial<KernelPolicy> = this.policy, maxBindingBytes = this.maxBindingBytes): Gpu {
    return new Gpu(this.dev, this.pipelines, policy, maxBindingBytes);
  }

  /** Buffers this context created and has not destroyed yet. */
  get liveBuffers(): number {
    return this.buffers.size;
  }

  /** Bytes of storage buffers this context created and has not destroyed (compared with the memory plan). */
  get storageBytes(): number {
    let sum = 0;
    for (const b of this.storage.values()) sum += b;
    return sum;
  }

  /** Compiles once per (source, constants); a compile error names the kernel, line:column and source. */
  pipeline(name: string, code: string, constants: Record<string, number> = {}): Promise<GPUComputePipeline> {
    const key = `${code}\u0000${JSON.stringify(constants)}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.compile(name, code, constants);
      this.pipelines.set(key, p);
    }
    return p;
  }

  private async compile(name: string, code: string, constants: Record<string, number>): Promise<GPUComputePipeline> {
    // The error scope keeps a compile error from also surfacing as an uncaptured error; getCompilationInfo
    // reports it below with line:column.
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ label: name, code });
    void this.device.popErrorScope();
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) {
      const lines = errors.map((m) => `  ${name}.wgsl:${m.lineNum}:${m.linePos} ${m.message}`).join('\n');
      throw new Error(`kernel ${name} failed to compile:\n${lines}\n--- source ---\n${code}`);
    }
    try {
      return await this.device.createComputePipelineAsync({ label: name, layout: 'auto', compute: { module, entryPoint: 'main', constants } });
    } catch (e) {
      throw new Error(`kernel ${name} pipeline failed (constants ${JSON.stringify(constants)}): ${(e as Error).message}`);
    }
  }

  /** fp32 storage buffer of `floats` elements (4 bytes each; also used for u32 data). */
  buffer(floats: number, label: string): GPUBuffer {
    const size = Math.max(16, Math.ceil((floats * 4) / 16) * 16);
    const limit = this.maxBindingBytes;
    if (size > limit) throw new Error(`buffer ${label} needs ${size} bytes; the device allows ${limit} (maxStorageBufferBindingSize)`);
    const b = this.device.createBuffer({ label, size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    this.buffers.add(b);
    this.storage.set(b, size);
    return b;
  }

  /** Uniform buffer holding `data` (a packed struct); rewritable with queue.writeBuffer. */
  uniform(data: ArrayBuffer, label: string): GPUBuffer {
    const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
    const b = this.device.createBuffer({ label, size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.device.queue.writeBuffer(b, 0, data);
    this.buffers.add(b);
    this.uniformBytes += size;
    return b;
  }

  private placeholders: Partial<Record<'read' | 'write', GPUBuffer>> = {};

  /** A small buffer to bind where a kernel's optional operand is unused (separate ones for read and write). */
  placeholder(kind: 'read' | 'write'): GPUBuffer {
    return (this.placeholders[kind] ??= this.buffer(4, `placeholder.${kind}`));
  }

  release(b: GPUBuffer): void {
    this.storage.delete(b);
    if (this.buffers.delete(b)) b.destroy();
  }

  releaseAll(): void {
    for (const b of this.buffers) b.destroy();
    this.buffers.clear();
    this.storage.clear();
    this.uniformBytes = 0;
    this.placeholders = {};
  }

  /** A dispatch with bindings 0..n-1 = `resources` (whole buffers) and `groups` workgroups (folded). */
  dispatch(name: string, pipeline: GPUComputePipeline, resources: GPUBuffer[], groups: number | [number, number]): Dispatch {
    const bindGroup = this.device.createBindGroup({
      label: name,
      layout: pipeline.getBindGroupLayout(0),
      entries: resources.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const grid = typeof groups === 'number' ? foldGrid(groups) : groups;
    return { name, pipeline, bindGroup, grid };
  }

  /** Records dispatches into one compute pass of `encoder`. */
  record(encoder: GPUCommandEncoder, dispatches: Dispatch[]): void {
    const pass = encoder.beginComputePass();
    for (const d of dispatches) {
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.grid[0], d.grid[1]);
    }
    pass.end();
  }

  /** Runs dispatches in one submit (tests and one-off work). */
  run(dispatches: Dispatch[]): void {
    const enc = this.device.createCommandEncoder();
    this.record(enc, dispatches);
    this.device.queue.submit([enc.finish()]);
  }

  upload(data: Float32Array | Uint32Array | Int32Array, label: string): GPUBuffer {
    const b = this.buffer(data.length, label);
    this.device.queue.writeBuffer(b, 0, data.buffer, data.byteOffset, data.byteLength);
    return b;
  }

  /**
   * Reads `floats` fp32 values from `offset` (in elements), through staging buffers of at most
   * readChunkBytes, so reading a large θ back never doubles it on the device.
   */
  async read(src: GPUBuffer, offset: number, floats: number): Promise<Float32Array> {
    const out = new Float32Array(floats);
    const per = readChunkBytes / 4;
    for (let done = 0; done < floats; done += per) {
      const n = Math.min(per, floats - done), bytes = n * 4;
      const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const enc = this.device.createCommandEncoder();
      enc.copyBufferToBuffer(src, (offset + done) * 4, staging, 0, bytes);
      this.device.queue.submit([enc.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      out.set(new Float32Array(staging.getMappedRange(0, bytes)), done);
      staging.unmap();
      staging.destroy();
    }
    return out;
  }

}
