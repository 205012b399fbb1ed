// Demo jobs (`tabtrain start --demo NAME`): the relay creates the named job from shared/jobs/demos.ts,
// running, with the text its npm package ships, exactly as a researcher's submission would be prepared
// (./submit.ts). Created once: a restarted relay finds it in its database.
import type { FastifyInstance } from 'fastify';
import { demoJobs, type DemoName } from '../../shared/jobs/demos.ts';
import type { JobSubmission } from '../../shared/jobs/spec.ts';
import { demoText } from '../data/demo-text.ts';
import { createJobFromData } from './submit.ts';

/** The relay as a job's owner: no API token has this id. */
const relayOwner = { tokenId: 'relay', name: 'tabtrain', actor: 'relay' };

/** The demo's job id is its name. Overrides change the spec (benchmarks train a smaller model). */
export async function createDemoJob(app: FastifyInstance, name: DemoName, overrides: Partial<JobSubmission> = {}): Promise<string> {
  if (await app.stores.relay.getJob(name)) return name;
  const job = { ...demoJobs[name], ...overrides };
  await createJobFromData(app, relayOwner, job, new TextEncoder().encode(demoText(name)), 'running', name);
  return name;
}
