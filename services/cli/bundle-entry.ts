/** What infra/package/bundle.ts bundles: the built CLI starts when its file is run. */
import { start } from './start.ts';

void start();
