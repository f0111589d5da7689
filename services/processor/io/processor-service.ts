/**
 * Where the cli demo, the bench and the pipeline harness import the processor from; the stage
 * itself is `../main.ts`.
 */
export { startProcessor, type RunningProcessor } from '../main.ts';
