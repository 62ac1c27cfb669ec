// The fencing rule between the scheduler leader and the agents: every command carries the
// leader's epoch; an agent refuses one below the highest it has accepted, and one that jumps
// further than this past it (a new epoch is taken once per leadership change, so such a jump
// is forged or corrupt; accepting it would make the agent refuse the real scheduler). The
// scheduler does not believe an agent's report of a higher epoch beyond the same bound.
export const MAX_EPOCH_JUMP = 1_000_000;
