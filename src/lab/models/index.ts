/** Every model of the lab, in the order the tables list them. */
import { processFreshModel, processPoolModel } from './edgeproc.js';
import { isolateModel } from './isolate.js';
import { threadModel } from './thread.js';
import { EdgeprocError } from '../../errors.js';
import type { Model, ModelName } from './types.js';
import { vmModel } from './vm.js';
import { workerdModel } from './workerd.js';

export const MODELS: readonly Model[] = [processPoolModel, processFreshModel, threadModel, vmModel, isolateModel, workerdModel];

export const MODEL_NAMES: readonly ModelName[] = ['process-pool', 'process-fresh', 'thread', 'vm', 'isolate', 'workerd'];

/** The models named in `--models a,b,…`, in the order given; an unknown name is an error naming the choices. */
export function pickModels(names: string[] | undefined): Model[] {
  if (!names || names.length === 0) return [...MODELS];
  return names.map((name) => {
    const model = MODELS.find((m) => m.name === name);
    if (!model) throw new EdgeprocError('ERR_CONFIG', `unknown model "${name}"; the models are: ${MODELS.map((m) => m.name).join(', ')}`);
    return model;
  });
}
