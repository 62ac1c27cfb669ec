// Named priority classes. Jobs carry a number (JobRequest.priority) so comparisons stay cheap
// and custom values remain possible; the names are what users type in a job spec.

import type { PRIORITY_CLASS_NAMES } from '@gantry/proto';

/** One number per class the API accepts (the `satisfies` keeps the two lists in step). */
export const PRIORITY_CLASSES = {
  critical: 1000,
  high: 750,
  normal: 500,
  low: 250,
  preemptible: 0,
} as const satisfies Record<(typeof PRIORITY_CLASS_NAMES)[number], number>;

export type PriorityClassName = keyof typeof PRIORITY_CLASSES;

export const DEFAULT_PRIORITY_CLASS: PriorityClassName = 'normal';

export function isPriorityClass(name: string): name is PriorityClassName {
  return Object.hasOwn(PRIORITY_CLASSES, name);
}

/** Priority number for a class name; an empty name means the default class. */
export function priorityOf(className: string): number {
  if (className === '') return PRIORITY_CLASSES[DEFAULT_PRIORITY_CLASS];
  if (!isPriorityClass(className)) {
    throw new RangeError(`unknown priority class "${className}", expected one of ${Object.keys(PRIORITY_CLASSES).join(', ')}`);
  }
  return PRIORITY_CLASSES[className];
}

/** Names already worked out: a victim search names two classes per candidate victim. */
const classNames = new Map<number, string>();

/** The class name for explanations: the highest class at or below the number. */
export function priorityClassName(priority: number): string {
  let name = classNames.get(priority);
  if (name === undefined) {
    name = className(priority);
    if (classNames.size < 1024) classNames.set(priority, name);
  }
  return name;
}

function className(priority: number): string {
  let best: string | undefined;
  let bestValue = -Infinity;
  for (const [name, value] of Object.entries(PRIORITY_CLASSES)) {
    if (value <= priority && value > bestValue) {
      best = name;
      bestValue = value;
    }
  }
  if (best === undefined) return String(priority);
  return bestValue === priority ? best : `${best}+${priority - bestValue}`;
}
