#!/usr/bin/env python3
"""Writes a bursty ZeroGPU request trace for gpu-sim (format: gpu-sched/sim.h).

Deterministic for a given --seed.  Spaces have Zipf-like popularity and a fixed
declared @spaces.GPU duration each (10..180 s); calls usually finish well inside
it and about 5% overrun (the scheduler revokes them at the deadline).  Visitors
are anonymous (60% of calls, many distinct IPs), signed-in users (30%) and PRO
(10%); 3% of calls carry no token and are billed to the Space.  Arrivals are
Poisson with a burst of 4x the base rate for 3 minutes every 15 minutes.

  gen_gpu_trace.py [--seed N] [--hours H] [--rate PER_HOUR] > trace.csv
"""
import argparse
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--rate", type=float, default=240.0, help="base calls per hour")
    args = ap.parse_args()
    rnd = random.Random(args.seed)

    spaces = []
    for i in range(40):
        declared = rnd.choice([10, 15, 20, 30, 30, 60, 60, 60, 90, 120, 180])
        spaces.append((f"owner{i % 13}/space-{i}", declared, 1.0 / (i + 1) ** 0.9))
    weights = [w for _, _, w in spaces]
    # Visitor pools grow with the trace, so a long trace is not all quota refusals.
    calls = args.rate * args.hours * 1.6
    anons = ["ip:10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255)
             for i in range(max(50, int(calls / 2.5)))]
    users = [f"user:u{i}" for i in range(max(30, int(calls / 5)))]
    pros = [f"user:pro{i}" for i in range(max(10, int(calls / 12)))]

    print("# arrival_s,space,visitor,class,declared_s,actual_s")
    print("# bursty ZeroGPU trace: gen_gpu_trace.py --seed %d --hours %g --rate %g"
          % (args.seed, args.hours, args.rate))
    print("arrival_s,space,visitor,class,declared_s,actual_s")
    t, end = 0.0, args.hours * 3600
    while True:
        burst = (t % 900) < 180
        rate = args.rate * (4.0 if burst else 1.0) / 3600.0
        t += rnd.expovariate(rate)
        if t >= end:
            break
        space, declared, _ = rnd.choices(spaces, weights)[0]
        r = rnd.random()
        if r < 0.03:
            visitor, cls = "", "anonymous"
        elif r < 0.60:
            # Anonymous visitors come back a few times: a pool of IPs.
            visitor, cls = rnd.choice(anons), "anonymous"
        elif r < 0.90:
            visitor, cls = rnd.choice(users), "user"
        else:
            visitor, cls = rnd.choice(pros), "pro"
        if rnd.random() < 0.05:
            actual = declared * rnd.uniform(1.05, 1.6)
        else:
            actual = declared * rnd.uniform(0.15, 0.9)
        print("%.3f,%s,%s,%s,%d,%.3f" % (t, space, visitor, cls, declared, actual))


if __name__ == "__main__":
    main()
