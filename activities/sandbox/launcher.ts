// A `sandboxd launch --spare` process: it moves itself into fresh cgroups as soon as it is spawned
// (the kernel makes that wait for an RCU grace period, often 10-20 ms), then waits for one JSON line
// on stdin naming the sandbox to become, and execs bwrap. The provider keeps one spare ready, so a
// cold start pays neither that wait nor the process spawn.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';

export interface LaunchSpec {
  runDir: string;
  cgroupName: string;
  memoryBytes: number;
  pids: number;
  /** bwrap and its arguments; `{listen-fd}` is replaced by the fd of the socket launch binds. */
  argv: string[];
}

export const EXIT_ALREADY_RUNNING = 3; // a live sandbox already owns the run dir

export class Launcher {
  /** The launcher's exit code once it exited; it only exits early (it becomes bwrap otherwise). */
  exit: number | null = null;

  private constructor(private readonly child: ChildProcess) {
    child.on('exit', (code) => (this.exit = code ?? 128));
    child.on('error', () => (this.exit = 127));
  }

  static spawn(sandboxdBin: string, cgroupRoot?: string): Launcher {
    const child = spawn(sandboxdBin, ['launch', '--spare', ...(cgroupRoot ? ['--cgroup-root', cgroupRoot] : [])], {
      detached: true, // its own session: the sandbox must outlive this worker
      stdio: ['pipe', 'ignore', 'ignore'], // it redirects itself to the sandbox's log once it knows it
      env: { PATH: '/usr/bin:/bin' },
    });
    child.unref();
    const stdin = child.stdin as Socket;
    stdin.on('error', () => {}); // EPIPE if it died; `exit` reports that
    stdin.unref();
    return new Launcher(child);
  }

  /** The pid the sandbox will have (the launcher execs bwrap). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  get usable(): boolean {
    return this.exit === null && this.child.pid !== undefined;
  }

  start(spec: LaunchSpec): void {
    const line = JSON.stringify({
      run_dir: spec.runDir,
      cgroup_name: spec.cgroupName,
      memory_bytes: spec.memoryBytes,
      pids: spec.pids,
      argv: spec.argv,
    });
    this.child.stdin?.end(line + '\n');
  }

  /** Lets an unused spare go: it reads end of file and exits. */
  discard(): void {
    this.child.stdin?.end();
  }
}
