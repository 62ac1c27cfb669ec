// A safe reader for Python pickles (protocols 0-5): it interprets the opcode stream and builds
// plain data, never code. Globals become PyGlobal names, calls (REDUCE, NEWOBJ, OBJ, INST)
// become PyObject records of the callee and its arguments, BUILD stores the state on the
// record, persistent ids (torch storages) become PyPersistent. Nothing is looked up by name,
// no JavaScript function is ever called on pickle data and no prototype is touched, so a hostile
// pickle can only produce a wrong value or a PickleError. The machine is a loop, not recursion;
// input size, opcode count, stack and memo sizes and integer widths are bounded.
//
// Why not the npm package `pickleparser` (0.2.1, the one pure-JS reader found): it decodes LONG1
// as unsigned (-2**40 reads 280375465082880), applies BUILD with Object.assign (a pickle can set
// `__proto__` of the objects it returns), calls stack values as functions for REDUCE/BUILD, has no
// limits, and has had two releases in total. What is needed here is small: walk the opcodes.

export class PickleError extends Error {
  override name = 'PickleError';
}

/** A module global named by GLOBAL / STACK_GLOBAL / INST, e.g. torch.distributed.checkpoint.metadata.Metadata. */
export class PyGlobal {
  readonly qualified: string;
  constructor(
    readonly module: string,
    readonly name: string,
  ) {
    this.qualified = `${module}.${name}`;
  }
}

/** The result of calling `callee(*args)` (REDUCE, NEWOBJ, OBJ, INST); BUILD sets `state`. */
export class PyObject {
  state: PyValue | undefined;
  /** Items added by APPEND(S)/SETITEM(S) to an object that is not a plain list/dict (e.g. an OrderedDict). */
  declare items: PyValue[] | undefined;
  declare dict: PyDict | undefined;
  constructor(
    readonly callee: PyValue,
    readonly args: PyValue[],
    readonly kwargs?: PyValue,
  ) {}
  /** `module.name` of the callee when it is a global, else undefined. */
  get className(): string | undefined {
    return this.callee instanceof PyGlobal ? this.callee.qualified : undefined;
  }
}

export class PyPersistent {
  constructor(readonly pid: PyValue) {}
}

/**
 * A Python dict; keys are primitives (by value) or other values (by identity). Small dicts (most
 * are: one per dataclass instance) are two arrays searched linearly; a Map index is built once a
 * dict grows past a few keys, so millions of small dicts stay cheap.
 */
export class PyDict {
  /** k0, v0, k1, v1, ... */
  private readonly kv: PyValue[] = [];
  private index: Map<PyValue, number> | undefined;

  get size(): number {
    return this.kv.length >> 1;
  }
  private find(key: PyValue): number {
    if (this.index) return this.index.get(key) ?? -1;
    const kv = this.kv;
    if (kv.length > 16) {
      const index = new Map<PyValue, number>();
      for (let i = 0; i < kv.length; i += 2) index.set(kv[i]!, i);
      this.index = index;
      return index.get(key) ?? -1;
    }
    for (let i = 0; i < kv.length; i += 2) if (kv[i] === key) return i;
    return -1;
  }
  get(key: PyValue): PyValue | undefined {
    const i = this.find(key);
    return i < 0 ? undefined : this.kv[i + 1];
  }
  set(key: PyValue, value: PyValue): void {
    const i = this.find(key);
    if (i >= 0) {
      this.kv[i + 1] = value;
      return;
    }
    this.index?.set(key, this.kv.length);
    this.kv.push(key, value);
  }
  keys(): PyValue[] {
    return this.kv.filter((_, i) => i % 2 === 0);
  }
  values(): PyValue[] {
    return this.kv.filter((_, i) => i % 2 === 1);
  }
  *entries(): IterableIterator<[PyValue, PyValue]> {
    for (let i = 0; i < this.kv.length; i += 2) yield [this.kv[i]!, this.kv[i + 1]!];
  }
}

export class PySet {
  constructor(readonly items: PyValue[]) {}
}

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

const EMPTY_TUPLE = Object.freeze(new PyTuple(Object.freeze([]) as unknown as PyValue[]));

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PySet
  | PyGlobal
  | PyObject
  | PyPersistent;

export interface PickleLimits {
  /** Largest pickle accepted, bytes. */
  maxBytes: number;
  /** Most opcodes executed (every opcode takes at least one byte, so maxBytes bounds this too). */
  maxOps: number;
  /** Most values on the stack plus mark stack, and most memo entries. */
  maxStack: number;
  /** Widest LONG1/LONG4 integer, bytes. */
  maxIntBytes: number;
}

export const DEFAULT_PICKLE_LIMITS: PickleLimits = {
  maxBytes: 256 * 1024 * 1024,
  maxOps: 500_000_000,
  maxStack: 10_000_000,
  maxIntBytes: 256,
};


/** Decodes one pickle starting at `start`; returns the value and the offset after its STOP. */
export function unpickle(
  buf: Uint8Array,
  limits: Partial<PickleLimits> = {},
  start = 0,
): { value: PyValue; end: number } {
  const lim = { ...DEFAULT_PICKLE_LIMITS, ...limits };
  if (buf.length - start > lim.maxBytes) throw new PickleError(`pickle is ${buf.length - start} bytes, over the limit of ${lim.maxBytes}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = start;
  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  // memo keys are small dense integers in practice (MEMOIZE numbers them 0, 1, 2, ...): an array
  // is much faster than a Map at millions of entries; keys are bounded, holes read as missing.
  const memo: (PyValue | undefined)[] = [];
  let memoCount = 0;
  let ops = 0;

  const need = (n: number): number => {
    if (n < 0 || !Number.isSafeInteger(n) || pos + n > buf.length) throw new PickleError(`truncated pickle: needs ${n} bytes at offset ${pos}`);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = (): number => buf[need(1)]!;
  const u16 = (): number => view.getUint16(need(2), true);
  const i32 = (): number => view.getInt32(need(4), true);
  const u32 = (): number => view.getUint32(need(4), true);
  const u64 = (): number => {
    const at = need(8);
    const v = view.getBigUint64(at, true);
    if (v > BigInt(buf.length - pos)) throw new PickleError(`truncated pickle: length ${v} at offset ${at} exceeds the ${buf.length - pos} bytes left`);
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => {
    const at = need(n);
    return buf.subarray(at, at + n);
  };
  const utf8 = (n: number): string => {
    const at = need(n);
    return b.toString('utf8', at, at + n);
  };
  const latin1 = (n: number): string => {
    const at = need(n);
    return b.toString('latin1', at, at + n);
  };
  const line = (): string => {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) throw new PickleError(`truncated pickle: no end of line after offset ${pos}`);
    const s = b.toString('latin1', pos, nl);
    pos = nl + 1;
    return s;
  };
  const pop = (): PyValue => {
    if (stack.length === 0) throw new PickleError(`stack underflow at offset ${pos - 1}`);
    return stack.pop()!;
  };
  const top = (): PyValue => {
    if (stack.length === 0) throw new PickleError(`stack underflow at offset ${pos - 1}`);
    return stack[stack.length - 1]!;
  };
  const popMark = (): PyValue[] => {
    const items = stack;
    const prev = marks.pop();
    if (prev === undefined) throw new PickleError(`mark stack underflow at offset ${pos - 1}`);
    stack = prev;
    return items;
  };
  const push = (v: PyValue): void => {
    if (stack.length + marks.length >= lim.maxStack) throw new PickleError('pickle stack too deep');
    stack.push(v);
  };
  const memoPut = (k: number, v: PyValue): void => {
    if (!Number.isSafeInteger(k) || k < 0 || k >= lim.maxStack) throw new PickleError(`memo key ${k} out of range`);
    if (memo[k] === undefined) memoCount++;
    memo[k] = v;
  };
  const memoGet = (k: number): PyValue => {
    const v = k >= 0 && k < memo.length ? memo[k] : undefined;
    if (v === undefined) throw new PickleError(`memo key ${k} not found at offset ${pos}`);
    return v;
  };
  const signedLE = (b: Uint8Array): number | bigint => {
    if (b.length > lim.maxIntBytes) throw new PickleError(`integer of ${b.length} bytes over the limit`);
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return normInt(v);
  };
  const decimal = (s: string): number | bigint => {
    const t = s.endsWith('L') ? s.slice(0, -1) : s;
    if (!/^[+-]?\d+$/.test(t) || t.length > lim.maxIntBytes * 3) throw new PickleError(`bad integer literal ${JSON.stringify(s.slice(0, 40))}`);
    return normInt(BigInt(t));
  };
  const appendTo = (target: PyValue, items: PyValue[]): void => {
    if (Array.isArray(target)) {
      for (const it of items) target.push(it);
    } else if (target instanceof PyObject) {
      target.items ??= [];
      for (const it of items) target.items.push(it);
    } else {
      throw new PickleError(`APPEND to ${describe(target)}`);
    }
  };
  const setItems = (target: PyValue, items: PyValue[]): void => {
    if (items.length % 2 !== 0) throw new PickleError('SETITEMS with an odd number of items');
    let dict: PyDict;
    if (target instanceof PyDict) dict = target;
    else if (target instanceof PyObject) dict = target.dict ??= new PyDict();
    else throw new PickleError(`SETITEM on ${describe(target)}`);
    for (let i = 0; i < items.length; i += 2) dict.set(items[i]!, items[i + 1]!);
  };

  while (pos < buf.length) {
    if (++ops > lim.maxOps) throw new PickleError('too many pickle opcodes');
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) throw new PickleError(`unsupported pickle protocol ${buf[pos - 1]}`);
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP '.'
        if (marks.length !== 0) throw new PickleError('STOP inside a MARK');
        return { value: pop(), end: pos };
      case 0x28: // MARK '('
        if (marks.length + stack.length >= lim.maxStack) throw new PickleError('pickle stack too deep');
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP '0'
        pop();
        break;
      case 0x31: // POP_MARK '1'
        popMark();
        break;
      case 0x32: // DUP '2'
        push(top());
        break;
      // memo
      case 0x70: // PUT 'p'
        memoPut(Number(decimal(line())), top());
        break;
      case 0x71: // BINPUT 'q'
        memoPut(u8(), top());
        break;
      case 0x72: // LONG_BINPUT 'r'
        memoPut(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memoPut(memoCount, top());
        break;
      case 0x67: // GET 'g'
        push(memoGet(Number(decimal(line()))));
        break;
      case 0x68: // BINGET 'h'
        push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET 'j'
        push(memoGet(u32()));
        break;
      // constants and numbers
      case 0x4e: // NONE 'N'
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x49: {
        // INT 'I'
        const s = line();
        push(s === '01' ? true : s === '00' ? false : decimal(s));
        break;
      }
      case 0x4c: // LONG 'L'
        push(decimal(line()));
        break;
      case 0x46: {
        // FLOAT 'F'
        const f = Number(line());
        push(f);
        break;
      }
      case 0x4a: // BININT 'J'
        push(i32());
        break;
      case 0x4b: // BININT1 'K'
        push(u8());
        break;
      case 0x4d: // BININT2 'M'
        push(u16());
        break;
      case 0x8a: // LONG1
        push(signedLE(bytes(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) throw new PickleError('LONG4 with a negative length');
        push(signedLE(bytes(n)));
        break;
      }
      case 0x47: // BINFLOAT 'G' (big-endian)
        push(view.getFloat64(need(8), false));
        break;
      // strings and bytes
      case 0x53: // STRING 'S'
        push(unquote(line()));
        break;
      case 0x56: // UNICODE 'V' (raw-unicode-escape)
        push(line().replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string | undefined, b: string | undefined) =>
          String.fromCodePoint(Math.min(parseInt((a ?? b)!, 16), 0x10ffff)),
        ));
        break;
      case 0x54: {
        // BINSTRING 'T'
        const n = i32();
        push(latin1(n));
        break;
      }
      case 0x55: // SHORT_BINSTRING 'U'
        push(latin1(u8()));
        break;
      case 0x58: // BINUNICODE 'X'
        push(utf8(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8(u8()));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8(u64()));
        break;
      case 0x42: // BINBYTES 'B'
        push(bytes(u32()));
        break;
      case 0x43: // SHORT_BINBYTES 'C'
        push(bytes(u8()));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        push(bytes(u64()));
        break;
      case 0x97: // NEXT_BUFFER
        throw new PickleError('pickle refers to out-of-band buffers');
      case 0x98: // READONLY_BUFFER
        break;
      // containers
      case 0x29: // EMPTY_TUPLE ')' (one shared, frozen instance: every NEWOBJ of a dataclass pushes one)
        push(EMPTY_TUPLE);
        break;
      case 0x74: // TUPLE 't'
        push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b, c]));
        break;
      }
      case 0x5d: // EMPTY_LIST ']'
        push([]);
        break;
      case 0x6c: // LIST 'l'
        push(popMark());
        break;
      case 0x61: {
        // APPEND 'a'
        const v = pop();
        appendTo(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS 'e'
        const items = popMark();
        appendTo(top(), items);
        break;
      }
      case 0x7d: // EMPTY_DICT '}'
        push(new PyDict());
        break;
      case 0x64: {
        // DICT 'd'
        const d = new PyDict();
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x73: {
        // SETITEM 's'
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS 'u'
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x8f: // EMPTY_SET
        push(new PySet([]));
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof PySet)) throw new PickleError(`ADDITEMS to ${describe(s)}`);
        for (const it of items) s.items.push(it);
        break;
      }
      case 0x91: // FROZENSET
        push(new PySet(popMark()));
        break;
      // globals, objects
      case 0x63: {
        // GLOBAL 'c'
        const module = line();
        push(new PyGlobal(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError('STACK_GLOBAL with non-string names');
        push(new PyGlobal(module, name));
        break;
      }
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        throw new PickleError('pickle uses the extension registry (EXT opcodes)');
      case 0x52: {
        // REDUCE 'R'
        const args = pop();
        const callee = pop();
        push(new PyObject(callee, tupleItems(args)));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        push(new PyObject(cls, tupleItems(args)));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        push(new PyObject(cls, tupleItems(args), kwargs));
        break;
      }
      case 0x6f: {
        // OBJ 'o'
        const items = popMark();
        if (items.length === 0) throw new PickleError('OBJ without a class');
        push(new PyObject(items[0]!, items.slice(1)));
        break;
      }
      case 0x69: {
        // INST 'i'
        const module = line();
        const name = line();
        push(new PyObject(new PyGlobal(module, name), popMark()));
        break;
      }
      case 0x62: {
        // BUILD 'b'
        const state = pop();
        const obj = top();
        if (!(obj instanceof PyObject)) throw new PickleError(`BUILD on ${describe(obj)}`);
        obj.state = state;
        break;
      }
      case 0x50: // PERSID 'P'
        push(new PyPersistent(line()));
        break;
      case 0x51: // BINPERSID 'Q'
        push(new PyPersistent(pop()));
        break;
      default:
        throw new PickleError(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')} at offset ${pos - 1}`);
    }
  }
  throw new PickleError('pickle ends without STOP (truncated)');
}

function normInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function tupleItems(v: PyValue): PyValue[] {
  if (v instanceof PyTuple) return v.items;
  if (Array.isArray(v)) return v;
  throw new PickleError(`call arguments are ${describe(v)}, not a tuple`);
}

function unquote(s: string): string {
  const q = s[0];
  if (s.length < 2 || (q !== '"' && q !== "'") || s[s.length - 1] !== q) throw new PickleError('STRING opcode argument is not quoted');
  return s
    .slice(1, -1)
    .replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_m, e: string) =>
      e[0] === 'x' ? String.fromCharCode(parseInt(e.slice(1), 16)) : ({ n: '\n', t: '\t', r: '\r', '0': '\0' } as Record<string, string>)[e] ?? e,
    );
}

/** A short description of a value's kind, for reasons. */
export function describe(v: PyValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (typeof v === 'bigint') return 'int';
  if (typeof v !== 'object') return typeof v === 'number' ? 'number' : typeof v;
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'list';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return 'dict';
  if (v instanceof PySet) return 'set';
  if (v instanceof PyGlobal) return `global ${v.qualified}`;
  if (v instanceof PyPersistent) return 'persistent id';
  return v.className ? `${v.className} object` : 'object';
}

// ----- accessors that never throw ---------------------------------------------------------------

/** The attribute dict of a PyObject: its BUILD state if a dict, or the dict of a (None, slots) / (dict, slots) state. */
export function attrs(v: PyValue | undefined): PyDict | undefined {
  if (!(v instanceof PyObject)) return undefined;
  const s = v.state;
  if (s instanceof PyDict) return s;
  if (s instanceof PyTuple && s.items.length === 2) {
    const merged = new PyDict();
    for (const part of s.items) if (part instanceof PyDict) for (const [k, val] of part.entries()) merged.set(k, val);
    return merged;
  }
  return undefined;
}

/** `obj.name` for a PyObject, or `obj[name]` for a dict (and for an OrderedDict-like PyObject). */
export function field(v: PyValue | undefined, name: string): PyValue | undefined {
  if (v instanceof PyDict) return v.get(name);
  if (v instanceof PyObject) return attrs(v)?.get(name) ?? v.dict?.get(name);
  return undefined;
}

/** A Python int as a JS number when it is a safe integer. */
export function asInt(v: PyValue | undefined): number | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return undefined;
}

/** The items of a list or tuple, or of a torch.Size (REDUCE(torch.Size, (tuple,))). */
export function seq(v: PyValue | undefined): PyValue[] | undefined {
  if (Array.isArray(v)) return v;
  if (v instanceof PyTuple) return v.items;
  if (v instanceof PyObject && v.className === 'torch.Size' && v.args.length === 1) return seq(v.args[0]);
  return undefined;
}
