// WebGPU in Node through Dawn (npm `webgpu`). Where the machine has no GPU driver, Debian chromium's
// SwiftShader Vulkan driver gives a CPU adapter (slow, but the same WGSL runs).
import { existsSync } from 'node:fs';
import { create, globals } from 'webgpu';

const swiftshaderIcd = '/usr/lib/chromium/vk_swiftshader_icd.json';
let installed = false;

/** navigator.gpu for Node. Tries the machine's own driver first, then SwiftShader. */
export async function nodeGpu(): Promise<GPU> {
  if (!installed) { Object.assign(globalThis, globals); installed = true; }
  const gpu = create([]) as GPU;
  if (await gpu.requestAdapter()) return gpu;
  if (!process.env.VK_ICD_FILENAMES && existsSync(swiftshaderIcd)) {
    process.env.VK_ICD_FILENAMES = swiftshaderIcd;
    const soft = create([]) as GPU;
    if (await soft.requestAdapter()) return soft;
  }
  throw new Error(
    'No WebGPU adapter in Node: install a GPU driver with Vulkan, or Debian packages chromium and libvulkan1 ' +
      `for the SwiftShader CPU driver (${swiftshaderIcd})`,
  );
}
