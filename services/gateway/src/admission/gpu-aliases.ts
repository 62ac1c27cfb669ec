// Short GPU names operators use (`--gpu-type H100`) and the model names nvidia-smi reports for
// them (`NVIDIA H100 80GB HBM3`). The planner's gpu-type filter matches a node's model exactly
// against the job's list (any of), so the gateway replaces a short name with every model it
// stands for; a full model name, or any name not listed here, is kept as given. The table in
// docs/cli.md ("GPU types") lists the same names.
export const GPU_ALIASES: Readonly<Record<string, readonly string[]>> = {
  'H100': ['NVIDIA H100 80GB HBM3', 'NVIDIA H100 PCIe', 'NVIDIA H100 NVL', 'NVIDIA H100'],
  'H200': ['NVIDIA H200', 'NVIDIA H200 NVL'],
  'H800': ['NVIDIA H800', 'NVIDIA H800 PCIe'],
  'B200': ['NVIDIA B200'],
  'GB200': ['NVIDIA GB200'],
  'A100': ['NVIDIA A100-SXM4-80GB', 'NVIDIA A100 80GB PCIe', 'NVIDIA A100-SXM4-40GB', 'NVIDIA A100-PCIE-40GB'],
  'A100-80GB': ['NVIDIA A100-SXM4-80GB', 'NVIDIA A100 80GB PCIe'],
  'A100-40GB': ['NVIDIA A100-SXM4-40GB', 'NVIDIA A100-PCIE-40GB'],
  'L40S': ['NVIDIA L40S'],
  'L4': ['NVIDIA L4'],
  'V100': ['Tesla V100-SXM2-16GB', 'Tesla V100-SXM2-32GB', 'Tesla V100-PCIE-16GB', 'Tesla V100-PCIE-32GB'],
};

const BY_UPPER = new Map(Object.entries(GPU_ALIASES).map(([alias, models]) => [alias.toUpperCase(), models]));

/** The job's GPU types with short names expanded (case-insensitive), in order, without repeats. */
export function expandGpuTypes(types: readonly string[]): string[] {
  const out = new Set<string>();
  for (const t of types) for (const m of BY_UPPER.get(t.trim().toUpperCase()) ?? [t]) out.add(m);
  return [...out];
}
