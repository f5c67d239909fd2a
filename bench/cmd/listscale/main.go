// Command listscale measures listings of big directories (issue #11): it
// fills a prefix with many empty objects, and times a directory read
// through a mount (time to the first getdents, and to the end).
//
//	AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... listscale put -endpoint URL -bucket B -prefix big/ -n 100000
//	listscale read -dir /mnt/big
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: listscale put|read [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "put":
		err = put(os.Args[2:])
	case "read":
		err = read(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "listscale:", err)
		os.Exit(1)
	}
}

// put uploads n empty objects prefix+fNNNNNN with workers parallel PUTs.
func put(args []string) error {
	fl := flag.NewFlagSet("put", flag.ExitOnError)
	endpoint := fl.String("endpoint", "http://127.0.0.1:9000", "S3 endpoint URL")
	bucket := fl.String("bucket", "", "bucket")
	prefix := fl.String("prefix", "big/", "key prefix")
	n := fl.Int("n", 100000, "objects")
	workers := fl.Int("workers", 64, "parallel PUTs")
	_ = fl.Parse(args)
	client := s3.NewFromConfig(aws.Config{
		Region:                     "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(*endpoint)
		o.UsePathStyle = true
	})
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket,
					Key: aws.String(fmt.Sprintf("%sf%06d", *prefix, i)), Body: bytes.NewReader(nil)})
				cancel()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("put %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("put %d objects in %s\n", *n, time.Since(start).Round(time.Millisecond))
	return firstErr
}

// read opens dir, times its first getdents64 and reading it to the end.
func read(args []string) error {
	fl := flag.NewFlagSet("read", flag.ExitOnError)
	dir := fl.String("dir", "", "directory")
	size := fl.Int("buf", 4096, "getdents buffer size")
	_ = fl.Parse(args)
	fd, err := syscall.Open(*dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	buf := make([]byte, *size)
	start := time.Now()
	var first time.Duration
	var names []string
	for {
		n, err := syscall.Getdents(fd, buf)
		if err != nil {
			return fmt.Errorf("getdents after %d entries: %w", len(names), err)
		}
		if first == 0 {
			first = time.Since(start)
		}
		if n == 0 {
			break
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
	fmt.Printf("first getdents %s, %d entries in %s\n", first.Round(time.Millisecond), len(names), time.Since(start).Round(time.Millisecond))
	return nil
}
