// A small collecting validator for the scheduler's policy documents (the scheduling config in
// placement/config.ts, the health config in health/config.ts): every problem is reported with
// its path in one pass (`states.suspect.exit: expected a number >= 0, got -1`), without a
// schema dependency in the pure cores.

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `"${value}"`;
  if (typeof value === 'object') return 'an object';
  return String(value);
}

export interface NumberRule {
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  max?: number;
  integer?: boolean;
  /** Absent is a problem too (by default absent means "use the default"). */
  required?: boolean;
}

export class Validator {
  readonly issues: string[] = [];

  object(value: unknown, path: string, known?: readonly string[]): Record<string, unknown> | undefined {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.issues.push(`${path || '(root)'}: expected an object, got ${describe(value)}`);
      return undefined;
    }
    if (known) {
      for (const key of Object.keys(value)) {
        if (!known.includes(key)) this.issues.push(`${join(path, key)}: unknown field (expected one of ${known.join(', ')})`);
      }
    }
    return value as Record<string, unknown>;
  }

  /** undefined stays undefined (the default applies); anything else must satisfy the rule. */
  number(value: unknown, path: string, rule: NumberRule = {}): number | undefined {
    if (value === undefined && !rule.required) return undefined;
    const ok = typeof value === 'number' && Number.isFinite(value)
      && (!rule.integer || Number.isInteger(value))
      && (rule.min === undefined || value >= rule.min)
      && (rule.above === undefined || value > rule.above)
      && (rule.max === undefined || value <= rule.max);
    if (!ok) {
      const bounds = [
        rule.min !== undefined ? `>= ${rule.min}` : undefined,
        rule.above !== undefined ? `> ${rule.above}` : undefined,
        rule.max !== undefined ? `<= ${rule.max}` : undefined,
      ].filter((b) => b !== undefined).join(' and ');
      this.issues.push(`${path}: expected ${rule.integer ? 'an integer' : 'a number'}${bounds ? ` ${bounds}` : ''}, got ${describe(value)}`);
      return undefined;
    }
    return value as number;
  }

  boolean(value: unknown, path: string): boolean | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') {
      this.issues.push(`${path}: expected true or false, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  string(value: unknown, path: string): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '') {
      this.issues.push(`${path}: expected a non-empty string, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.issues.push(`${path}: expected one of ${allowed.join(', ')}, got ${describe(value)}`);
      return undefined;
    }
    return value as T;
  }

  /** A section of plain numbers: each known key validated by its rule; unknown keys reported. */
  numbers<K extends string>(value: unknown, path: string, rules: Readonly<Record<K, NumberRule>>): Partial<Record<K, number>> | undefined {
    const o = this.object(value, path, Object.keys(rules));
    if (!o) return undefined;
    const out: Partial<Record<K, number>> = {};
    for (const k of Object.keys(rules) as K[]) {
      const n = this.number(o[k], join(path, k), rules[k]);
      if (n !== undefined) out[k] = n;
    }
    return out;
  }
}

export function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}
