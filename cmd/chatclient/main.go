// Command chatclient is the console client of clusterchat: the classic
// course client's menu and commands, plus history, presence and read
// markers, over the native protocol (package client), so it never loses or
// repeats a message and survives server restarts.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdin, os.Stdout, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatclient:", err)
		os.Exit(1)
	}
}
