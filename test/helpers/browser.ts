// Headless Debian Chromium with WebGPU on SwiftShader (see DESIGN.md), for e2e tests and benchmarks.
import { chromium, type Browser } from 'playwright-core';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const baseArgs = [
  '--no-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];
const webgpuArgs = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-angle=swiftshader'];

/** Launch Chromium; webgpu:false launches it with WebGPU switched off (the page's fallback path). */
export async function launchBrowser(opts: { webgpu?: boolean } = {}): Promise<Browser> {
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath}: install Debian's package (apt-get install chromium) or set CHROMIUM_PATH`);
  }
  const args = [...baseArgs, ...(opts.webgpu === false ? ['--disable-webgpu', '--disable-features=WebGPU'] : webgpuArgs)];
  return chromium.launch({ executablePath: chromiumPath, headless: true, args });
}

/** A fresh user-data dir, for launchPersistentContext-style tests that need storage to survive reloads. */
export function freshProfileDir(): string {
  return mkdtempSync(join(tmpdir(), 'tabtrain-chromium-'));
}
