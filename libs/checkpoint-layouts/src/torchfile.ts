// Integrity of files written by torch.save, and reading their pickle without loading tensors.
//
// torch.save (default since torch 1.6) writes a zip archive of stored entries:
// `<archive>/data.pkl` (the object, pickle protocol 2, tensors as persistent ids), `<archive>/data/<key>`
// (raw storage bytes), `byteorder`, `version`, ... The central directory is written last, so a file
// still being written or cut short has no end-of-central-directory record, and an entry whose data
// runs past the central directory means bytes are missing. Reading data.pkl needs only the central
// directory and that one entry. The legacy format (`_use_new_zipfile_serialization=False`) is a
// sequence of pickles (magic number, protocol, sys info, object) followed by raw storages.
import { inflateRawSync } from 'node:zlib';
import type { FileHandle } from 'node:fs/promises';
import { CheckError, readExactly, type FsView } from './fsview.js';
import { PickleError, unpickle, type PyValue } from './pickle.js';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const EOCD_SIG = 0x06054b50;
const EOCD64_LOC_SIG = 0x07064b50;
const EOCD64_SIG = 0x06064b50;
const CDH_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const MAX_CD_BYTES = 256 * 1024 * 1024;

/** The entries of a zip file, checked to lie inside it; CheckError with the precise reason otherwise. */
export async function readZipIndex(fh: FileHandle, size: number, label: string): Promise<{ entries: ZipEntry[]; cdOffset: number }> {
  if (size < 22) throw new CheckError(`${label} is ${size} bytes: too short to be a torch.save archive (truncated or still being written)`);
  const tailLen = Math.min(size, 22 + 0xffff + 20);
  const tail = await readExactly(fh, size - tailLen, tailLen, label);
  let at = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) {
      at = i;
      break;
    }
  }
  if (at < 0) throw new CheckError(`${label} has no zip end-of-central-directory record: truncated or still being written`);
  let count = tail.readUInt16LE(at + 10);
  let cdSize = tail.readUInt32LE(at + 12);
  let cdOffset = tail.readUInt32LE(at + 16);
  let cdEnd = size - tailLen + at;
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = at - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== EOCD64_LOC_SIG) throw new CheckError(`${label}: zip64 end-of-central-directory locator missing`);
    const eocd64 = Number(tail.readBigUInt64LE(loc + 8));
    if (!Number.isSafeInteger(eocd64) || eocd64 + 56 > size) throw new CheckError(`${label}: zip64 end-of-central-directory record lies outside the file`);
    const rec = await readExactly(fh, eocd64, 56, label);
    if (rec.readUInt32LE(0) !== EOCD64_SIG) throw new CheckError(`${label}: bad zip64 end-of-central-directory record`);
    count = Number(rec.readBigUInt64LE(32));
    cdSize = Number(rec.readBigUInt64LE(40));
    cdOffset = Number(rec.readBigUInt64LE(48));
    cdEnd = eocd64;
  }
  if (!Number.isSafeInteger(cdOffset) || !Number.isSafeInteger(cdSize) || cdOffset + cdSize > cdEnd)
    throw new CheckError(`${label}: the zip central directory (offset ${cdOffset}, ${cdSize} bytes) does not fit before its end record; the file is damaged`);
  if (cdSize > MAX_CD_BYTES) throw new CheckError(`${label}: zip central directory of ${cdSize} bytes is over the limit`);
  const cd = await readExactly(fh, cdOffset, cdSize, label);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CDH_SIG) throw new CheckError(`${label}: zip central directory entry ${i} is damaged`);
    const method = cd.readUInt16LE(p + 10);
    let compressedSize = cd.readUInt32LE(p + 20);
    let usize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localOffset = cd.readUInt32LE(p + 42);
    if (p + 46 + nameLen + extraLen + commentLen > cd.length) throw new CheckError(`${label}: zip central directory entry ${i} is damaged`);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    // zip64 extended information: the fields that are 0xffffffff, in this order
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        const take = (): number => {
          if (q + 8 > e + 4 + len) throw new CheckError(`${label}: zip64 extra field of ${name} is damaged`);
          const v = Number(cd.readBigUInt64LE(q));
          q += 8;
          return v;
        };
        if (usize === 0xffffffff) usize = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localOffset === 0xffffffff) localOffset = take();
      }
      e += 4 + len;
    }
    if (localOffset + 30 + nameLen + compressedSize > cdOffset)
      throw new CheckError(`${label}: entry ${name} (${compressedSize} bytes at ${localOffset}) runs past the data area; bytes are missing`);
    entries.push({ name, method, compressedSize, size: usize, localOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return { entries, cdOffset };
}

async function readEntry(fh: FileHandle, entry: ZipEntry, cdOffset: number, label: string, max: number): Promise<Buffer> {
  const lh = await readExactly(fh, entry.localOffset, 30, label);
  if (lh.readUInt32LE(0) !== LOCAL_SIG) throw new CheckError(`${label}: local header of ${entry.name} is damaged`);
  const start = entry.localOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
  if (start + entry.compressedSize > cdOffset) throw new CheckError(`${label}: entry ${entry.name} runs past the data area; bytes are missing`);
  if (entry.compressedSize > max || entry.size > max) throw new CheckError(`${label}: ${entry.name} is ${Math.max(entry.size, entry.compressedSize)} bytes, over the limit of ${max}`);
  const raw = await readExactly(fh, start, entry.compressedSize, label);
  if (entry.method === 0) return raw;
  if (entry.method === 8) {
    try {
      return inflateRawSync(raw, { maxOutputLength: max });
    } catch (err) {
      throw new CheckError(`${label}: ${entry.name} does not inflate (${(err as Error).message})`);
    }
  }
  throw new CheckError(`${label}: ${entry.name} uses zip compression method ${entry.method}`);
}

// PROTO 2, LONG1 of 10 bytes: the legacy torch.save magic number 0x1950a86a20f9469cfc6c
const LEGACY_MAGIC = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

/** The file does not start like a torch.save file at all (as opposed to one cut short). */
export class NotTorchFile extends CheckError {
  override name = 'NotTorchFile';
}

export interface TorchFile {
  format: 'zip' | 'legacy';
  /** The pickled object, when read. */
  value?: PyValue;
  entries: number;
}

/**
 * Checks a torch.save file: a complete zip archive with a `<archive>/data.pkl` entry, or a legacy
 * pickle stream. With `readPickle`, also decodes data.pkl (bounded by maxPickleBytes).
 */
export async function checkTorchFile(view: FsView, abs: string, readPickle: boolean, label = view.label(abs)): Promise<TorchFile> {
  return view.withFile(
    abs,
    async (fh, size) => {
      const head = await readExactly(fh, 0, Math.min(size, LEGACY_MAGIC.length), label);
      if (head.length === LEGACY_MAGIC.length && head.equals(LEGACY_MAGIC)) {
        if (!readPickle) return { format: 'legacy', entries: 0 };
        const buf = await readExactly(fh, 0, Math.min(size, view.limits.maxPickleBytes), label);
        try {
          let at = 0;
          for (let i = 0; i < 3; i++) at = unpickle(buf, {}, at).end; // magic, protocol, sys_info
          return { format: 'legacy', value: unpickle(buf, {}, at).value, entries: 0 };
        } catch (err) {
          throw new CheckError(`${label}: legacy torch.save pickle does not decode (${(err as Error).message})`);
        }
      }
      if (size >= 4 && head.readUInt32LE(0) !== LOCAL_SIG)
        throw new NotTorchFile(`${label} is not a torch.save file (neither a zip archive nor a legacy pickle stream)`);
      const { entries, cdOffset } = await readZipIndex(fh, size, label);
      const pkl = entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
      if (pkl.length !== 1) throw new CheckError(`${label}: torch archive has ${pkl.length === 0 ? 'no' : 'several'} <archive>/data.pkl entries`);
      if (!readPickle) return { format: 'zip', entries: entries.length };
      const data = await readEntry(fh, pkl[0]!, cdOffset, label, view.limits.maxPickleBytes);
      try {
        return { format: 'zip', value: unpickle(data, { maxBytes: view.limits.maxPickleBytes }).value, entries: entries.length };
      } catch (err) {
        if (err instanceof PickleError) throw new CheckError(`${label}: data.pkl does not decode (${err.message})`);
        throw err;
      }
    },
    label,
  );
}

/**
 * Checks a safetensors file: 8-byte little-endian header length, a JSON header whose tensors'
 * `data_offsets` say how long the data is; returns the tensor names. CheckError when cut short.
 */
export async function checkSafetensors(view: FsView, abs: string, label = view.label(abs)): Promise<string[]> {
  return view.withFile(
    abs,
    async (fh, size) => {
      if (size < 8) throw new CheckError(`${label} is ${size} bytes: no safetensors header (truncated or still being written)`);
      const n = Number((await readExactly(fh, 0, 8, label)).readBigUInt64LE(0));
      if (n > view.limits.maxJsonBytes) throw new CheckError(`${label}: safetensors header of ${n} bytes is over the limit`);
      if (8 + n > size) throw new CheckError(`${label} is ${size} bytes but its safetensors header alone needs ${8 + n}: truncated`);
      let header: unknown;
      try {
        header = JSON.parse((await readExactly(fh, 8, n, label)).toString('utf8'));
      } catch {
        throw new CheckError(`${label}: safetensors header is not valid JSON`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new CheckError(`${label}: safetensors header is not a JSON object`);
      let end = 0;
      const names: string[] = [];
      for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
        if (name === '__metadata__') continue;
        const offs = (info as { data_offsets?: unknown } | null)?.data_offsets;
        if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((x) => Number.isSafeInteger(x) && (x as number) >= 0))
          throw new CheckError(`${label}: tensor ${name} has no valid data_offsets`);
        end = Math.max(end, offs[1] as number);
        names.push(name);
      }
      if (size < 8 + n + end) throw new CheckError(`${label} is ${size} bytes but its header describes ${8 + n + end}: truncated`);
      return names;
    },
    label,
  );
}
