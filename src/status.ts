// Process.Status: what waitpid(2) reported about a child, decoded the way Ruby's
// Process::Status presents it. Linux's wait-status encoding: low 7 bits the signal
// (0 exited, 0x7f stopped), bit 7 the core dump, next byte the exit code or stop signal.
import { signame } from './signals-table.js';

export class Status {
  readonly pid: number;
  /** The raw status word from waitpid(2). */
  readonly raw: number;

  constructor(pid: number, raw: number) {
    this.pid = pid;
    this.raw = raw;
  }

  get exited(): boolean {
    return (this.raw & 0x7f) === 0;
  }
  get signaled(): boolean {
    const low = this.raw & 0x7f;
    return low !== 0 && low !== 0x7f;
  }
  get stopped(): boolean {
    return (this.raw & 0xff) === 0x7f;
  }
  get continued(): boolean {
    return this.raw === 0xffff;
  }
  /** The exit code, or null when the child did not exit normally. */
  get exitstatus(): number | null {
    return this.exited ? (this.raw >> 8) & 0xff : null;
  }
  get termsig(): number | null {
    return this.signaled ? this.raw & 0x7f : null;
  }
  get stopsig(): number | null {
    return this.stopped ? (this.raw >> 8) & 0xff : null;
  }
  get coredump(): boolean {
    return this.signaled && (this.raw & 0x80) !== 0;
  }
  /** true for exit 0, false for any other exit, null when the child did not exit. */
  get success(): boolean | null {
    return this.exited ? this.exitstatus === 0 : null;
  }

  /** Ruby's format: "pid 123 exit 7", "pid 123 SIGTERM (signal 15)". */
  toString(): string {
    if (this.exited) return `pid ${this.pid} exit ${this.exitstatus}`;
    if (this.signaled) {
      const sig = this.termsig!;
      return `pid ${this.pid} SIG${signame(sig) ?? '?'} (signal ${sig})${this.coredump ? ' (core dumped)' : ''}`;
    }
    if (this.stopped) {
      const sig = this.stopsig!;
      return `pid ${this.pid} stopped SIG${signame(sig) ?? '?'} (signal ${sig})`;
    }
    if (this.continued) return `pid ${this.pid} continued`;
    return `pid ${this.pid} status ${this.raw}`;
  }

  inspect(): string {
    return `#<Process::Status: ${this.toString()}>`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.inspect();
  }
}
