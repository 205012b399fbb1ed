// Tabtrain's WebGPU training engine: WGSL kernels with explicit forward/backward layers for the model
// zoo (mlp, gpt), one flat fp32 buffer each for θ, its gradient and AdamW's moments. Runs unchanged in a
// tab, a Web Worker and Node (Dawn). Start with createWebGpuTrainer; kernels/ holds one concern per file.
export { acquireDevice, foldGrid, Gpu, maxGroupsPerDim, type Device, type Dispatch } from './device.ts';
export { logitChunkRows, planMemory, planProblem, typicalAdapter, type AdapterBudget, type MemoryPlan } from './memory-plan.ts';
export { choosePolicy, isCpuAdapter, type KernelPolicy, type MatmulKind } from './policy.ts';
export { createWebGpuTrainer, webGpuLogits, type EngineOptions, type WebGpuTrainer } from './trainer.ts';
