// Host telemetry collectors: pure parsers per source, rate derivation, the cycle that ties
// them to a DeviceBackend, and the mappings to protobuf and Prometheus.
export * from './counters.js';
export * from './pci.js';
export * from './gpu/types.js';
export * from './gpu/query-csv.js';
export * from './gpu/smi-text.js';
export * from './gpu/dcgm.js';
export * from './gpu/derive.js';
export * from './gpu/reader.js';
export * from './nfs/mountstats.js';
export * from './nfs/derive.js';
export * from './rdma/sysfs.js';
export * from './rdma/derive.js';
export * from './rdma/reader.js';
export * from './xid/catalog.js';
export * from './xid/kernel-log.js';
export * from './xid/parse.js';
export * from './xid/reader.js';
export * from './snapshot.js';
export * from './to-proto.js';
export * from './telemetry-collector.js';
export * from './prometheus.js';
