package content

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func randomPiece(b *testing.B) []byte {
	p := make([]byte, PieceLength)
	rand.Read(p)
	return p
}

// BenchmarkSHA1Baseline is plain SHA-1 over the same bytes BenchmarkPieceHash
// hashes: the floor the prototype's byte widening is measured against.
func BenchmarkSHA1Baseline(b *testing.B) {
	p := randomPiece(b)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		sha1.Sum(p)
	}
}

func BenchmarkPieceHash(b *testing.B) {
	p := randomPiece(b)
	h := NewPieceHasher()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		h.Hash(p)
	}
}

// BenchmarkPieceHashASCII shows the word-at-a-time path for text files.
func BenchmarkPieceHashASCII(b *testing.B) {
	p := randomPiece(b)
	for i := range p {
		p[i] &= 0x7f
	}
	h := NewPieceHasher()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		h.Hash(p)
	}
}

const benchFileSize = 256 << 20

// benchFile writes a random file of benchFileSize once per benchmark and
// reads it once so both file benchmarks start from the page cache.
func benchFile(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "big.bin")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, benchFileSize); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkSHA1FileBaseline is plain single-core SHA-1 streamed over the
// same file HashFile reads.
func BenchmarkSHA1FileBaseline(b *testing.B) {
	path := benchFile(b)
	b.SetBytes(benchFileSize)
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		h := sha1.New()
		if _, err := io.Copy(h, f); err != nil {
			b.Fatal(err)
		}
		h.Sum(nil)
		f.Close()
	}
}

func BenchmarkHashFile(b *testing.B) {
	path := benchFile(b)
	b.SetBytes(benchFileSize)
	for b.Loop() {
		if _, err := HashFile(context.Background(), path, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRatioPieceHash alternates PieceHash and plain SHA-1 over the same
// random piece and reports PieceHash's throughput relative to SHA-1
// ("speed-vs-sha1"; 1.0 = as fast). Interleaving keeps the comparison fair on
// a busy machine.
func BenchmarkRatioPieceHash(b *testing.B) {
	p := randomPiece(b)
	h := NewPieceHasher()
	var ours, base time.Duration
	for b.Loop() {
		t0 := time.Now()
		h.Hash(p)
		t1 := time.Now()
		sha1.Sum(p)
		base += time.Since(t1)
		ours += t1.Sub(t0)
	}
	b.ReportMetric(float64(base)/float64(ours), "speed-vs-sha1")
}

// BenchmarkRatioHashFile alternates HashFile and single-core streaming SHA-1
// over the same 256 MiB file and reports HashFile's throughput relative to it.
func BenchmarkRatioHashFile(b *testing.B) {
	path := benchFile(b)
	var ours, base time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := HashFile(context.Background(), path, nil); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		f, _ := os.Open(path)
		h := sha1.New()
		io.Copy(h, f)
		f.Close()
		base += time.Since(t1)
		ours += t1.Sub(t0)
	}
	b.ReportMetric(float64(base)/float64(ours), "speed-vs-sha1")
}
