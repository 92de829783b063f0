// Command lattigo-ref times Lattigo's CKKS bootstrapping (or, with -ops-level, one
// multiplication and one rotation) on one of its default N = 2^16 parameter sets and
// prints one JSON line with the fields `cargo xtask bench-bootstrap --json` uses (median seconds, log2 of the maximum and mean slot error against real
// inputs uniform in [-1, 1], residual levels), so that this project's bootstrap can be
// compared with a reference in the same run (docs/results/bootstrap.md). Not part of
// the Rust workspace; see README.md beside it for how to build it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"runtime"
	"sort"
	"time"

	"github.com/tuneinsight/lattigo/v6/circuits/ckks/bootstrapping"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

func main() {
	name := flag.String("params", "N16QP1767H32768H32", "Lattigo default bootstrapping parameter set: N16QP1767H32768H32, N16QP1788H32768H32 (dense main secret) or N16QP1546H192H32 (sparse)")
	reps := flag.Int("reps", 3, "timed bootstraps (the median is reported)")
	chain := flag.Int("chain", 0, "refresh one ciphertext this many times in a row and report the error after each")
	logSlots := flag.Int("logslots", 15, "log2 of the slot count (15: full slots at N = 2^16; fewer: sparse packing)")
	opsLevel := flag.Int("ops-level", -1, "instead of bootstrapping, time mult+relin+rescale and a rotation by 1 on the set's residual parameters at this level (12: 13 limbs, as bench-ckks)")
	flag.Parse()

	sets := map[string]struct {
		scheme ckks.ParametersLiteral
		boot   bootstrapping.ParametersLiteral
	}{
		"N16QP1767H32768H32": {bootstrapping.N16QP1767H32768H32.SchemeParams, bootstrapping.N16QP1767H32768H32.BootstrappingParams},
		"N16QP1788H32768H32": {bootstrapping.N16QP1788H32768H32.SchemeParams, bootstrapping.N16QP1788H32768H32.BootstrappingParams},
		"N16QP1546H192H32":   {bootstrapping.N16QP1546H192H32.SchemeParams, bootstrapping.N16QP1546H192H32.BootstrappingParams},
	}
	set, ok := sets[*name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown parameter set %q\n", *name)
		os.Exit(2)
	}
	params, err := ckks.NewParametersFromLiteral(set.scheme)
	check(err)
	if *opsLevel >= 0 {
		timeOps(params, *opsLevel, max(*reps, 1), *name)
		return
	}
	if *logSlots < 1 || *logSlots > params.LogMaxSlots() {
		fmt.Fprintf(os.Stderr, "-logslots %d is not in [1, %d]\n", *logSlots, params.LogMaxSlots())
		os.Exit(2)
	}
	set.boot.LogSlots = logSlots
	btp, err := bootstrapping.NewParametersFromLiteral(params, set.boot)
	check(err)

	start := time.Now()
	kgen := rlwe.NewKeyGenerator(params)
	sk := kgen.GenSecretKeyNew()
	evk, _, err := btp.GenEvaluationKeys(sk)
	check(err)
	keygen := time.Since(start).Seconds()
	start = time.Now()
	eval, err := bootstrapping.NewEvaluator(btp, evk)
	check(err)
	setup := time.Since(start).Seconds()

	enc := ckks.NewEncoder(params)
	encryptor := rlwe.NewEncryptor(params, sk)
	decryptor := rlwe.NewDecryptor(params, sk)
	slots := 1 << *logSlots
	rng := rand.New(rand.NewSource(int64(slots)))
	want := make([]complex128, slots)
	for i := range want {
		want[i] = complex(2*rng.Float64()-1, 0)
	}
	pt := ckks.NewPlaintext(params, 0)
	pt.LogDimensions.Cols = *logSlots
	check(enc.Encode(want, pt))
	ct, err := encryptor.EncryptNew(pt)
	check(err)

	errs := func(c *rlwe.Ciphertext, ref []complex128) (float64, float64) {
		got := make([]complex128, slots)
		check(enc.Decode(decryptor.DecryptNew(c), got))
		maxErr, sum := 0.0, 0.0
		for i := range got {
			d := math.Hypot(real(got[i])-real(ref[i]), imag(got[i])-imag(ref[i]))
			maxErr = math.Max(maxErr, d)
			sum += d
		}
		return math.Log2(maxErr), math.Log2(sum / float64(len(got)))
	}

	var times []float64
	var out *rlwe.Ciphertext
	for r := 0; r < max(*reps, 1); r++ {
		start = time.Now()
		out, err = eval.Bootstrap(ct)
		check(err)
		times = append(times, time.Since(start).Seconds())
	}
	sort.Float64s(times)
	maxErr, meanErr := errs(out, want)

	var chainErr []float64
	c := ct
	for i := 0; i < *chain; i++ {
		c, err = eval.Bootstrap(c)
		check(err)
		e, _ := errs(c, want)
		chainErr = append(chainErr, e)
	}

	report := map[string]any{
		"reference":          "lattigo v6",
		"params":             *name,
		"slots":              slots,
		"log_qp":             btp.BootstrappingParameters.LogQP(),
		"secret_h":           params.XsHammingWeight(),
		"residual_levels":    params.MaxLevel(),
		"log_scale":          params.LogDefaultScale(),
		"level_out":          out.Level(),
		"keygen_s":           keygen,
		"setup_s":            setup,
		"median_s":           times[len(times)/2],
		"times_s":            times,
		"reps":               len(times),
		"log2_max_err":       maxErr,
		"log2_mean_err":      meanErr,
		"chain_log2_max_err": chainErr,
		"gomaxprocs":         runtime.GOMAXPROCS(0),
	}
	b, err := json.Marshal(report)
	check(err)
	fmt.Println(string(b))
}

// timeOps prints the median times of mult+relin+rescale and of a rotation by one slot
// at `level`, with a relinearization key and one Galois key over the whole chain.
func timeOps(params ckks.Parameters, level, reps int, name string) {
	if level < 1 || level > params.MaxLevel() {
		fmt.Fprintf(os.Stderr, "-ops-level %d is not in [1, %d]\n", level, params.MaxLevel())
		os.Exit(2)
	}
	kgen := rlwe.NewKeyGenerator(params)
	sk := kgen.GenSecretKeyNew()
	rlk := kgen.GenRelinearizationKeyNew(sk)
	gks := kgen.GenGaloisKeysNew([]uint64{params.GaloisElement(1)}, sk)
	eval := ckks.NewEvaluator(params, rlwe.NewMemEvaluationKeySet(rlk, gks...))
	enc := ckks.NewEncoder(params)
	encryptor := rlwe.NewEncryptor(params, sk)
	rng := rand.New(rand.NewSource(1))
	values := make([]complex128, params.MaxSlots())
	for i := range values {
		values[i] = complex(2*rng.Float64()-1, 0)
	}
	pt := ckks.NewPlaintext(params, level)
	check(enc.Encode(values, pt))
	ct, err := encryptor.EncryptNew(pt)
	check(err)
	median := func(f func()) float64 {
		var ts []float64
		for r := 0; r < reps; r++ {
			start := time.Now()
			f()
			ts = append(ts, time.Since(start).Seconds())
		}
		sort.Float64s(ts)
		return ts[len(ts)/2]
	}
	mult := median(func() {
		out, err := eval.MulRelinNew(ct, ct)
		check(err)
		check(eval.Rescale(out, out))
	})
	rotate := median(func() {
		_, err := eval.RotateNew(ct, 1)
		check(err)
	})
	b, err := json.Marshal(map[string]any{
		"reference":  "lattigo v6",
		"params":     name,
		"level":      level,
		"limbs":      level + 1,
		"log_qp":     params.LogQP(),
		"reps":       reps,
		"mult_s":     mult,
		"rotate_s":   rotate,
		"gomaxprocs": runtime.GOMAXPROCS(0),
	})
	check(err)
	fmt.Println(string(b))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
