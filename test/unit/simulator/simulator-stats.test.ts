import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Episode } from '../../../services/simulator/core/episode.ts';
import { countEpisode, emptyStats } from '../../../services/simulator/core/simulator-stats.ts';

test('each played episode counts once, by role and outcome, with its prepares and clock steps', () => {
  const stats = emptyStats();
  const episode = (role: string, outcome: string, completed: number, failed: number) =>
    ({
      role,
      outcome,
      preparesCompleted: completed,
      preparesFailed: failed,
      clockSteps: 1,
    }) as unknown as Episode;
  countEpisode(stats, episode('source', 'completed', 2, 0));
  countEpisode(stats, episode('source', 'completed', 1, 1));
  countEpisode(stats, episode('destination', 'failed-load', 0, 0));
  assert.equal(stats.migrations, 3);
  assert.deepEqual(stats.migrationsByOutcome, {
    'source:completed': 2,
    'destination:failed-load': 1,
  });
  assert.equal(stats.preparesCompleted, 3);
  assert.equal(stats.preparesFailed, 1);
  assert.equal(stats.clockSteps, 3);
  assert.equal(stats.eventsSent, 0);
});
