// Command chatbench is the load generator behind BENCHMARKS.md: it drives
// chat servers on this machine (loopback only) over real TCP connections,
// checks that every message arrives exactly once and in order, and prints a
// human summary followed by one machine-readable RESULT line. The exit code
// is non-zero when anything was lost, duplicated, reordered or failed.
//
//	chatbench -scenario pingpong -n 100 -d 10s
//	chatbench -scenario flood -n 10 -w 50 -addrs 127.0.0.1:6000,127.0.0.1:6002
//	chatbench -scenario flood -n 10 -rate 10000
//	chatbench -scenario pingpong -n 100 -transport ws -addrs 127.0.0.1:8080
//	chatbench -scenario group -groups 100 -members 100
//	chatbench -scenario idle -n 19000 -pid $(pidof chatserver)
//	chatbench -scenario storm -n 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"clusterchat/internal/bench"
)

func main() {
	if os.Getenv(bench.ChildEnv) == "1" {
		os.Exit(bench.RunChild(os.Stdin, os.Stdout))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Main parses args, runs the benchmark and returns the exit code: 0 when
// the run was clean, 1 when it saw loss, duplicates, reordering or errors,
// 2 when it could not run.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chatbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.Config
	var addrs string
	var verbose, child bool
	fs.StringVar(&cfg.Scenario, "scenario", "pingpong", "scenario: "+strings.Join(bench.Scenarios, ", "))
	fs.StringVar(&addrs, "addrs", "127.0.0.1:6000", "comma-separated server addresses (127.0.0.0/8 only); users are spread round-robin")
	fs.DurationVar(&cfg.Duration, "d", 10e9, "measured duration")
	fs.IntVar(&cfg.N, "n", 1, "pairs (pingpong), senders (flood), connections (idle, storm)")
	fs.IntVar(&cfg.W, "w", 0, "messages in flight per sender (flood default 50, group default 1)")
	fs.IntVar(&cfg.Groups, "groups", 1, "group: number of groups")
	fs.IntVar(&cfg.Members, "members", 2, "group: members per group")
	fs.IntVar(&cfg.Size, "size", 64, "message text bytes")
	fs.Float64Var(&cfg.Rate, "rate", 0, "offered msgs/s in total, open loop (flood, group); 0 = closed loop")
	fs.StringVar(&cfg.Transport, "transport", "tcp", "tcp, or ws: WebSocket to ws://ADDR/ws, with -addrs the servers' HTTP ports (pingpong, flood, group)")
	fs.StringVar(&cfg.Proto, "proto", "native", "protocol: native or classic (classic: pingpong only)")
	fs.IntVar(&cfg.PID, "pid", 0, "server pid, to read its memory from /proc")
	fs.StringVar(&cfg.Metrics, "metrics", "", "server /metrics URL, to read its memory when -pid is not given")
	fs.IntVar(&cfg.Users, "users", 0, "distinct accounts (group: default min(groups*members,1000); idle, storm: default min(n,100))")
	fs.IntVar(&cfg.SrcIPs, "srcips", 1, "idle, storm: spread connections over source addresses 127.0.0.1..127.0.0.N")
	fs.IntVar(&cfg.PerProc, "per-proc", 15000, "idle: connections per process (the box allows 20000 open files each); more use child processes")
	fs.DurationVar(&cfg.Grace, "grace", 5e9, "time allowed after -d for acks and deliveries still in flight")
	fs.IntVar(&cfg.Setup, "setup", 16, "parallel registrations during setup")
	fs.BoolVar(&verbose, "v", false, "log setup progress to stderr")
	fs.BoolVar(&child, "child", false, "internal: run as an idle child process")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if child {
		return bench.RunChild(os.Stdin, stdout)
	}
	for _, a := range strings.Split(addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Addrs = append(cfg.Addrs, a)
		}
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	r, err := bench.Run(ctx, cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "chatbench: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, r.Line())
	if !r.OK() {
		return 1
	}
	return 0
}
