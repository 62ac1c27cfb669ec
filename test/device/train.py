"""A small real training job for the GPU-host check (test/device/README.md).

Run by torchrun under a Gantry agent: an MLP trained on the GPU with NCCL, a PyTorch DCP
checkpoint every CKPT_EVERY steps written into GANTRY_CHECKPOINT_DIR and reported through
gantry_ckpt (begin, then commit: COMMITTED only when the layout check finds it complete).
With CRASH_AT_STEP set, the first attempt raises at that step (an application error the
job's retry policy recovers from; `@record` has torchrun write it to the error file the agent
reads, as training code run by torchrun should); the next attempt gets GANTRY_RESUME_FROM,
loads it and prints the weights' checksum at save and at load, so the check can compare them.
"""
import os
import time

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.elastic.multiprocessing.errors import record

import gantry_ckpt

STEPS = int(os.environ.get("STEPS", "300"))
CKPT_EVERY = int(os.environ.get("CKPT_EVERY", "100"))
CRASH_AT = int(os.environ.get("CRASH_AT_STEP", "0"))
attempt = int(os.environ.get("GANTRY_ATTEMPT", "1"))


@record
def main():
    dist.init_process_group("nccl")
    local_rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local_rank)
    rank = dist.get_rank()

    def log(msg):
        print(f"[rank {rank} attempt {attempt}] {msg}", flush=True)

    log(
        "device %s (%s), torch %s, world %d, MASTER_ADDR=%s MASTER_PORT=%s CUDA_VISIBLE_DEVICES=%s"
        % (torch.cuda.get_device_name(), torch.version.cuda, torch.__version__, dist.get_world_size(),
           os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT"), os.environ.get("CUDA_VISIBLE_DEVICES"))
    )

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(1024, 4096), torch.nn.GELU(), torch.nn.Linear(4096, 1024)
    ).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def checksum():
        return float(sum(p.double().sum().item() for p in model.parameters()))

    start = 0
    resume = os.environ.get("GANTRY_RESUME_FROM", "")
    if resume:
        state = {"model": model.state_dict()}
        dcp.load(state, checkpoint_id=resume)
        model.load_state_dict(state["model"])
        start = int(os.path.basename(resume.rstrip("/")).split("-")[1])
        log("resumed from %s at step %d, checksum %.6f" % (resume, start, checksum()))

    x = torch.randn(256, 1024, device="cuda")
    t0 = time.time()
    for step in range(start + 1, STEPS + 1):
        loss = (model(x) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % CKPT_EVERY == 0:
            path = gantry_ckpt.checkpoint_path("step-%d" % step)
            gantry_ckpt.begin(path, step)
            dcp.save({"model": model.state_dict()}, checkpoint_id=path)
            dist.barrier()
            result = gantry_ckpt.commit(path, step) if rank == 0 else None
            log("step %d loss %.5f checkpoint %s saved, checksum %.6f, committed %s %s"
                % (step, loss.item(), path, checksum(), result.ok if result else "-", result.reasons if result else ""))
        if CRASH_AT and attempt == 1 and step == CRASH_AT:
            raise RuntimeError("crashing at step %d on purpose (CRASH_AT_STEP)" % step)
    torch.cuda.synchronize()
    log("done: %d steps in %.2f s, loss %.5f" % (STEPS - start, time.time() - t0, loss.item()))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
