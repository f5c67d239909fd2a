// Command bucketfs mounts an S3-compatible bucket as a POSIX filesystem.
// Its command line is compatible with s3fs-fuse's
// ("bucketfs BUCKET MOUNTPOINT -o url=...,use_path_request_style"), so it
// can stand in for s3fs in existing scripts.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
)

// version and commit are set at build time (scripts/build-static.sh,
// the Makefile) with -ldflags "-X main.version=v1.2.3 -X main.commit=abc1234".
// The commit is passed explicitly because builds may run with
// -buildvcs=false or without .git (a Docker build context).
var (
	version = "dev"
	commit  = ""
)

func main() {
	args := os.Args[1:]
	if isMountHelper(os.Args[0]) {
		// Started by mount(8) as /sbin/mount.fuse.bucketfs: translate its
		// argument convention into ours.
		var fake bool
		var err error
		args, fake, err = mountHelperArgs(args)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mount.fuse.bucketfs: %s\n", oneLine(err.Error()))
			os.Exit(2)
		}
		if fake {
			// mount -f: do everything except the mount itself.
			os.Exit(0)
		}
	}
	os.Exit(realMain(args))
}

// realMain returns the exit status: 0 success, 1 failure, 2 usage error.
func realMain(args []string) int {
	started := time.Now()
	env := realSysEnv()
	cfg, err := parseArgs(args, env)
	var ue *usageError
	switch {
	case errors.Is(err, errHelp):
		usage(os.Stdout, env)
		return 0
	case errors.Is(err, errVersion):
		fmt.Println(versionString())
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "bucketfs: %s\n", oneLine(ue.Error()))
		return 2
	case err != nil:
		fmt.Fprintf(os.Stderr, "bucketfs: %s\n", oneLine(err.Error()))
		return 1
	}

	child := daemonChild()
	if !cfg.Foreground && child == nil {
		for _, w := range cfg.Warnings {
			fmt.Fprintf(os.Stderr, "bucketfs: warning: %s\n", w)
		}
		// The local checks are cheap: failing them here gives the error
		// without a round trip through a child (and works where the
		// child could not even be started). A dead mount left by a
		// crashed daemon is not an error: the child replaces it and
		// says so in its log.
		if err := localChecks(cfg); err != nil && !errors.Is(err, errDeadMount) {
			fmt.Fprintf(os.Stderr, "bucketfs: %s\n", oneLine(err.Error()))
			return 1
		}
		if err := daemonize(cfg, args, env, started); err != nil {
			fmt.Fprintf(os.Stderr, "bucketfs: %s\n", oneLine(err.Error()))
			return 1
		}
		return 0
	}

	// Foreground, or the background child.
	logOut := io.Writer(os.Stderr) // the child's stderr is the log file
	if child == nil && cfg.LogFile != "" {
		f, err := openLogFile(cfg.LogFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bucketfs: %s\n", oneLine(err.Error()))
			return 1
		}
		defer f.Close()
		logOut = f
	}
	log := slog.New(newLogHandler(logOut, cfg.LogFormat, cfg.LogLevel))
	if child != nil {
		// Several daemons may share one log file.
		log = log.With("pid", os.Getpid(), "mnt", cfg.Mountpoint)
		// Do not pin the caller's working directory (paths are absolute).
		_ = os.Chdir("/")
	}
	slog.SetDefault(log)
	cfg.Logger = log

	shutdownSignals := []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	if child != nil {
		// No terminal to hang up; don't die of a stray SIGHUP.
		signal.Ignore(syscall.SIGHUP)
	} else {
		// A closed terminal must not kill us before pending writes are uploaded.
		shutdownSignals = append(shutdownSignals, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), shutdownSignals...)
	defer stop()

	cfg.OnReady = func() { child.report(nil) }
	err = run(ctx, cfg)
	if err == nil {
		return 0
	}
	if child != nil {
		log.Error("bucketfs failed", "err", err)
		if !child.reported() {
			child.report(err)
		}
		return 1
	}
	// In the foreground the error is the one line on stderr; logging it
	// too would print it twice.
	if cfg.LogFile != "" {
		log.Error("bucketfs failed", "err", err)
	}
	fmt.Fprintf(os.Stderr, "bucketfs: %s\n", oneLine(err.Error()))
	return 1
}

// newLogHandler returns the slog handler for --log-format.
func newLogHandler(w io.Writer, format string, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// versionString names the release and the commit the binary was built from.
func versionString() string {
	s := "bucketfs " + version
	if commit != "" {
		return s + " (commit " + commit + ") " + runtime.Version()
	}
	// Without -X main.commit, the VCS stamp of "go build" (absent with
	// -buildvcs=false).
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, modified, when string
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision":
				rev = kv.Value
			case "vcs.modified":
				if kv.Value == "true" {
					modified = "-dirty"
				}
			case "vcs.time":
				when = kv.Value
			}
		}
		if rev != "" {
			s += " (commit " + rev + modified
			if when != "" {
				s += ", " + when
			}
			s += ")"
		}
	}
	return s + " " + runtime.Version()
}
