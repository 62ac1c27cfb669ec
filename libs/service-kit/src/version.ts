// The release every Gantry process reports (`gantry admin status`, the agent's registration).
export const GANTRY_VERSION = '0.1.0';
