/**
 * One VM name, one source. Two sources that would yield the same VM name (`web-1.qmp` and
 * `web-1.sock` in the socket directory, an explicit `--socket` and a discovered one, a QMP socket
 * and a libvirt domain) would interleave two VMs' events under one key, and the processor would
 * drop one as redeliveries. The first source to claim a name keeps it; every later one is refused
 * with an error naming both, until the owner releases the name.
 *
 * A source is any stable string naming where events come from (`/run/vms/web-1.qmp`,
 * `tcp:10.0.0.5:4444`, `libvirt:qemu:///system/web-1`).
 */
export type VmClaim = { ok: true } | { ok: false; owner: string; problem: string };

export class VmNames {
  readonly #owners = new Map<string, string>();

  /** Claims `vm` for `source`; claiming again from the same source is allowed (idempotent). */
  claim(vm: string, source: string): VmClaim {
    const owner = this.#owners.get(vm);
    if (owner === undefined || owner === source) {
      this.#owners.set(vm, source);
      return { ok: true };
    }
    return {
      ok: false,
      owner,
      problem:
        `VM name "${vm}" of ${source} is already used by ${owner}; ` +
        'two sources never share a VM name (rename one socket or give it NAME=)',
    };
  }

  /** Releases `vm` if `source` owns it; a release by a non-owner changes nothing. */
  release(vm: string, source: string): void {
    if (this.#owners.get(vm) === source) this.#owners.delete(vm);
  }

  ownerOf(vm: string): string | undefined {
    return this.#owners.get(vm);
  }

  get size(): number {
    return this.#owners.size;
  }
}

/**
 * The problems among a fixed list of sources (explicit `--socket` targets at start): one per name
 * claimed twice, naming both sources.
 */
export function duplicateVmNames(targets: readonly { vm: string; source: string }[]): string[] {
  const names = new VmNames();
  const problems: string[] = [];
  for (const { vm, source } of targets) {
    const claim = names.claim(vm, source);
    if (!claim.ok) problems.push(claim.problem);
  }
  return problems;
}
