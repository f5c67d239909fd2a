package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The bare SDK's floors for the metadata workloads (4, 5, 7): the requests
// a FUSE layer cannot do without, sent one at a time as the programs on the
// mount send their calls (ls, find, du, grep, tar, a loop of reads), timed
// the same way: PUT, ListObjectsV2 with a delimiter of the directory,
// GET and DELETE of each small file (4a-4d); ListObjectsV2 of the flat
// directory with a delimiter and of the tree without one (5a, 5b); PUT of
// each file of the tarball, ListObjectsV2 of the tree without a delimiter
// (du), and that listing plus a GET of each file (grep) (7a-7c).

// sdkSteps runs a floor job in a worker and records each step's seconds
// as the metric's unit needs: files/s for n files, else seconds.
func (r *runner) sdkSteps(ctx context.Context, c *cellRun, timeout time.Duration, j job, n int, ids ...string) error {
	// A step that failed leaves the others' times (res.Steps) standing;
	// the failure goes to the steps without one.
	res, err := r.worker(ctx, timeout, j)
	for _, id := range ids {
		sec, ok := res.Steps[id]
		switch {
		case !ok:
			if err == nil {
				c.bad(id, errors.New("step not timed"))
			}
		case r.unitOf(id) == "files/s":
			c.ok(id, float64(n)/sec, nil)
		case r.unitOf(id) == "ms":
			c.ok(id, sec*1000, nil)
		default:
			c.ok(id, sec, nil)
		}
	}
	return err
}

func (r *runner) sdkSmall(ctx context.Context, c *cellRun) error {
	prefix := fmt.Sprintf("small/sdk-%d/", c.run)
	defer r.cleanup(ctx, prefix)
	n := r.cfg.SmallFiles
	return r.sdkSteps(ctx, c, 4*(60*time.Second+time.Duration(n)*100*time.Millisecond),
		job{Op: "sdksmall", N: n, FileSize: r.cfg.SmallSize, Seed: smlSeed, Prefix: prefix}, n,
		"small_create", "small_ls", "small_read", "small_delete")
}

func (r *runner) sdkList(ctx context.Context, c *cellRun) error {
	n := r.cfg.FlatObjects + r.cfg.TreeObjects
	return r.sdkSteps(ctx, c, 60*time.Second+time.Duration(n)*10*time.Millisecond,
		job{Op: "sdklist", Counts: map[string]int{"flat": r.cfg.FlatObjects, "tree": r.cfg.TreeObjects}}, 0,
		"list_flat", "list_tree")
}

func (r *runner) sdkDev(ctx context.Context, c *cellRun) error {
	prefix := fmt.Sprintf("dev/sdk-%d/", c.run)
	defer r.cleanup(ctx, prefix)
	d := r.dev
	return r.sdkSteps(ctx, c, 3*(60*time.Second+time.Duration(d.Files)*100*time.Millisecond),
		job{Op: "sdkdev", Path: d.Tarball, Prefix: prefix, Counts: map[string]int{"files": d.Files, "matches": d.Matches}}, 0,
		"dev_untar", "dev_du", "dev_grep")
}

// cleanup removes what a run left under prefix, whatever happened.
func (r *runner) cleanup(ctx context.Context, prefix string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	_ = deletePrefix(dctx, r.client, r.target.Bucket, prefix)
}

// countList lists prefix page by page (with delimiter, or the whole
// subtree without one) and counts the objects (not the common prefixes).
func countList(ctx context.Context, c *s3.Client, bucket, prefix, delimiter string, each func(key string)) (int, error) {
	in := &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix}
	if delimiter != "" {
		in.Delimiter = &delimiter
	}
	n := 0
	p := s3.NewListObjectsV2Paginator(c, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, err
		}
		for _, o := range page.Contents {
			n++
			if each != nil {
				each(aws.ToString(o.Key))
			}
		}
	}
	return n, nil
}

// timed runs f and stores its seconds under id.
func timed(res *jobResult, id string, f func() error) error {
	t0 := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	if res.Steps == nil {
		res.Steps = map[string]float64{}
	}
	res.Steps[id] = time.Since(t0).Seconds()
	return nil
}

func getBody(ctx context.Context, c *s3.Client, bucket, key string) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func wantCount(what string, got, want int) error {
	if got != want {
		return fmt.Errorf("%w: %s: %d objects, want %d", errWrong, what, got, want)
	}
	return nil
}

// wSDKSmall: workload 4 with the SDK, one request at a time.
func wSDKSmall(ctx context.Context, j *job, res *jobResult) error {
	c, b := j.S3.client(), j.S3.Bucket
	key := func(i int) string { return j.Prefix + smallName(i) }
	return errors.Join(
		timed(res, "small_create", func() error {
			for i := 0; i < j.N; i++ {
				if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: aws.String(key(i)),
					Body: bytes.NewReader(smallContent(j.Seed, i, j.FileSize))}); err != nil {
					return err
				}
			}
			return nil
		}),
		timed(res, "small_ls", func() error {
			n, err := countList(ctx, c, b, j.Prefix, "/", nil)
			return errors.Join(err, wantCount("listing", n, j.N))
		}),
		timed(res, "small_read", func() error {
			for i := 0; i < j.N; i++ {
				body, err := getBody(ctx, c, b, key(i))
				if err != nil {
					return err
				}
				if !bytes.Equal(body, smallContent(j.Seed, i, j.FileSize)) {
					return fmt.Errorf("%w: %s differs", errWrong, key(i))
				}
			}
			return nil
		}),
		timed(res, "small_delete", func() error {
			for i := 0; i < j.N; i++ {
				if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b, Key: aws.String(key(i))}); err != nil {
					return err
				}
			}
			return nil
		}))
}

// wSDKList: workload 5's listings with the SDK.
func wSDKList(ctx context.Context, j *job, res *jobResult) error {
	c, b := j.S3.client(), j.S3.Bucket
	return errors.Join(
		timed(res, "list_flat", func() error {
			n, err := countList(ctx, c, b, flatDir+"/", "/", nil)
			return errors.Join(err, wantCount("flat directory", n, j.Counts["flat"]))
		}),
		timed(res, "list_tree", func() error {
			n, err := countList(ctx, c, b, treeDir+"/", "", nil)
			return errors.Join(err, wantCount("tree", n, j.Counts["tree"]))
		}))
}

// wSDKDev: workload 7 with the SDK: the tarball's files PUT one at a time
// (read from the tarball as tar would), the tree listed without a
// delimiter (du), then listed again and every file fetched one at a time
// and searched (grep).
func wSDKDev(ctx context.Context, j *job, res *jobResult) error {
	c, b := j.S3.client(), j.S3.Bucket
	f, err := os.Open(j.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	return errors.Join(
		timed(res, "dev_untar", func() error {
			tr := tar.NewReader(f)
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				if h.Typeflag != tar.TypeReg {
					continue
				}
				body, err := io.ReadAll(tr)
				if err != nil {
					return err
				}
				if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: aws.String(j.Prefix + h.Name),
					Body: bytes.NewReader(body)}); err != nil {
					return err
				}
			}
		}),
		timed(res, "dev_du", func() error {
			n, err := countList(ctx, c, b, j.Prefix, "", nil)
			return errors.Join(err, wantCount("tree", n, j.Counts["files"]))
		}),
		timed(res, "dev_grep", func() error {
			var keys []string
			if _, err := countList(ctx, c, b, j.Prefix, "", func(k string) { keys = append(keys, k) }); err != nil {
				return err
			}
			hits := 0
			for _, k := range keys {
				body, err := getBody(ctx, c, b, k)
				if err != nil {
					return err
				}
				if bytes.Contains(body, []byte(devNeedle)) {
					hits++
				}
			}
			if hits != j.Counts["matches"] {
				return fmt.Errorf("%w: %d files match, want %d", errWrong, hits, j.Counts["matches"])
			}
			return nil
		}))
}

// wSDKTTFB is 9b's floor: a HEAD, then a GET, of each file one after
// another, in a process that has sent one request before (a warm
// connection, as a mounted daemon has); Steps["ttfb"] is the median.
func wSDKTTFB(ctx context.Context, j *job, res *jobResult) error {
	c, b := j.S3.client(), j.S3.Bucket
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b, Key: aws.String(launchKey)}); err != nil {
		return err
	}
	var ds []float64
	for i := range j.N {
		key := ttfbKey(i)
		t0 := time.Now()
		if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b, Key: &key}); err != nil {
			return err
		}
		body, err := getBody(ctx, c, b, key)
		if err != nil {
			return err
		}
		ds = append(ds, time.Since(t0).Seconds())
		if !bytes.Equal(body, ttfbBody(i)) {
			return fmt.Errorf("%w: %s: got %d bytes", errWrong, key, len(body))
		}
	}
	res.Steps = map[string]float64{"ttfb": median(ds)}
	return nil
}
