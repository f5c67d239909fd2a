// Command mkbucket creates an S3 bucket (if it does not exist yet) on an
// S3-compatible endpoint. The demo script uses it to prepare MinIO.
//
//	AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... mkbucket -endpoint http://127.0.0.1:9000 -bucket demo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func main() {
	endpoint := flag.String("endpoint", "http://127.0.0.1:9000", "S3 endpoint URL")
	bucket := flag.String("bucket", "", "bucket to create")
	region := flag.String("region", "us-east-1", "signing region")
	wait := flag.Duration("wait", 30*time.Second, "how long to retry while the endpoint is not ready")
	flag.Parse()
	if *bucket == "" {
		fmt.Fprintln(os.Stderr, "mkbucket: -bucket is required")
		os.Exit(2)
	}
	ak, sk := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if ak == "" || sk == "" {
		fmt.Fprintln(os.Stderr, "mkbucket: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		os.Exit(2)
	}
	client := s3.NewFromConfig(aws.Config{
		Region:                     *region,
		Credentials:                credentials.NewStaticCredentialsProvider(ak, sk, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(*endpoint)
		o.UsePathStyle = true
	})

	deadline := time.Now().Add(*wait)
	for {
		err := create(client, *bucket)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "mkbucket: create bucket %s at %s: %v\n", *bucket, *endpoint, err)
			os.Exit(1)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func create(client *s3.Client, bucket string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err == nil || errors.As(err, &owned) {
		return nil
	}
	return err
}
