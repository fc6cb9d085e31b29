package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// burstSlot is the width of one slot of the per-instant CPU sample.
const burstSlot = 5 * time.Millisecond

// burstSlots is how many slots after each instant are sampled: 200 ms.
const burstSlots = 40

// cpuBurst is the process's CPU in the moments after each tick's instant,
// averaged over the ticks of a window. Every S5 job fires at the same
// instant, so the window's average CPU hides a burst at the instant; the
// lateness of the last runs of a tick is decided inside it.
type cpuBurst struct {
	ticks int
	// busy is, per slot after the instant, the process's CPU in % of one
	// core, averaged over the ticks.
	busy [burstSlots]float64
}

// sampleBurst samples the process's CPU time (getrusage, microseconds)
// every burstSlot for burstSlots slots after each whole second in
// [from, to), and returns the average per slot.
func sampleBurst(ctx context.Context, from, to time.Time) cpuBurst {
	var b cpuBurst
	// Per slot, CPU used and the wall time it was used in: a sampler
	// woken late (the burst is when it is) makes a longer slot, not a
	// wrong figure.
	var cpu, wall [burstSlots]time.Duration
	for inst := from; inst.Before(to); inst = inst.Add(time.Second) {
		prev, prevAt, ok := waitCPU(ctx, inst)
		if !ok {
			break
		}
		for i := 0; i < burstSlots; i++ {
			cur, curAt, ok := waitCPU(ctx, inst.Add(time.Duration(i+1)*burstSlot))
			if !ok {
				return b.average(cpu, wall)
			}
			cpu[i] += cur - prev
			wall[i] += curAt.Sub(prevAt)
			prev, prevAt = cur, curAt
		}
		b.ticks++
	}
	return b.average(cpu, wall)
}

func (b cpuBurst) average(cpu, wall [burstSlots]time.Duration) cpuBurst {
	for i := range cpu {
		if wall[i] > 0 {
			b.busy[i] = float64(cpu[i]) / float64(wall[i]) * 100
		}
	}
	return b
}

// waitCPU waits until at and returns the process's CPU time then, and
// when it read it.
func waitCPU(ctx context.Context, at time.Time) (time.Duration, time.Time, bool) {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return 0, time.Time{}, false
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, time.Time{}, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), time.Now(), true
}

// saturatedSlots counts the slots after the instant in which the process
// used at least share of capacity (both in % of one core). A count, not the
// span from the instant: one slot just under the line at the start would
// make that span 0 while the process stayed busy throughout.
func (b cpuBurst) saturatedSlots(capacity, share float64) int {
	n := 0
	for i := 0; i < burstSlots; i++ {
		if b.busy[i] >= share*capacity {
			n++
		}
	}
	return n
}

// describe renders the burst in a few spans after the instant.
func (b cpuBurst) describe() string {
	spans := [][2]int{{0, 2}, {2, 5}, {5, 10}, {10, 20}, {20, 40}}
	var parts []string
	for _, s := range spans {
		var v float64
		for i := s[0]; i < s[1]; i++ {
			v += b.busy[i]
		}
		parts = append(parts, fmt.Sprintf("%d–%d ms: %s%%", s[0]*int(burstSlot/time.Millisecond), s[1]*int(burstSlot/time.Millisecond), num(v/float64(s[1]-s[0]))))
	}
	return strings.Join(parts, ", ")
}
