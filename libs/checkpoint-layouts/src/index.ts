// @gantry/checkpoint-layouts: recognise the checkpoint layouts that training code writes and
// check that each checkpoint is complete. Filesystem reads only; see README.md for the rules.
export { scanCheckpoints, checkCheckpoint } from './scan.js';
export { DEFAULT_LIMITS, type Limits } from './fsview.js';
export {
  CHECKPOINT_FORMATS,
  type CheckpointFile,
  type CheckpointFormat,
  type CheckpointStatus,
  type FormatOption,
  type FoundCheckpoint,
  type ScanOptions,
} from './types.js';
export { unpickle, PickleError, PyDict, PyGlobal, PyObject, PyPersistent, PySet, PyTuple, type PyValue, type PickleLimits } from './pickle.js';
