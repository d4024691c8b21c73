import { processFreshModel, processPoolModel } from '../../src/lab/models/edgeproc.js';
import { modelContract } from './contract.js';

modelContract(processPoolModel);
modelContract(processFreshModel);
