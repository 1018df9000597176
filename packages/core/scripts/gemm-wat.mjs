/**
 * WebAssembly text of sp's matrix kernel (wasm SIMD128, shared memory for worker threads):
 *
 *   gemm(W, x, y, bias, Kp, N, n0, n1, m0, m1):
 *     y[m, n] = bias[n] + Σ_k x[m, k] · W[n, k]     for n in [n0, n1), m in [m0, m1)
 *
 * W is [N, Kp] (the weight stored as "out × in", each output's weights contiguous), x is [M, Kp],
 * y is [M, N]; all byte addresses into the imported memory, Kp a multiple of 16 (rows zero-padded),
 * bias 0 for none. Every weight row is read once per call and used for 4 input rows at a time, so a
 * batch shares the weight traffic; a block of 4 input rows keeps 8 partial sums in registers.
 * Every output is summed in the same order whatever block it is computed in: a row's result does not
 * depend on the batch it came in (batch invariance, bit for bit).
 *
 *   transpose(src, dst, rows, cols, stride): see TRANSPOSE below.
 *   nonfinite(p, n): see NONFINITE below.
 *
 * Generated (not hand-written) because the unrolled bodies are long; scripts/build-gemm-wasm.mjs
 * assembles it with wabt into src/backend/gemm/wasm-binary.ts.
 *
 * `relaxed`: the multiply-add of the inner loop as relaxed SIMD's f32x4.relaxed_madd (one fused FMA
 * where the CPU has it: Node ≥ 22 on x86-64 and arm64) instead of f32x4.mul + f32x4.add. Its results
 * may differ from the plain kernel's in the last bits (one rounding instead of two), so it is a
 * separate binary; the plain one stays bit for bit what it was. Either is batch-invariant.
 */
export function gemmWat({ relaxed = false } = {}) {
  fma = relaxed;
  return `(module
 (import "env" "mem" (memory 1 65536 shared))
 (func (export "gemm") (param $W i32) (param $x i32) (param $y i32) (param $bias i32) (param $Kp i32) (param $N i32)
   (param $n0 i32) (param $n1 i32) (param $m0 i32) (param $m1 i32)
  (local $n i32) (local $m i32) (local $kb i32)
  ${locals()}
  (local.set $kb (i32.shl (local.get $Kp) (i32.const 2)))
  (local.set $n (local.get $n0))
${indent(nLoop(), 2)}
 )
${TRANSPOSE}
${NONFINITE}
)
`;
}

let fma = false;
/** a + b · c, as the kernel variant does it. */
const madd = (a, b, c) => (fma ? `(f32x4.relaxed_madd ${b} ${c} ${a})` : `(f32x4.add ${a} (f32x4.mul ${b} ${c}))`);

const ACC = 2; // accumulators per output: even and odd 4-float groups, to hide the add latency
const MB_MAX = 4; // input rows per block

function locals() {
  const l = [];
  l.push('(local $wend i32)');
  l.push('(local $w i32) (local $pw i32) (local $b f32) (local $vw v128)');
  for (let i = 0; i < MB_MAX; i++) l.push(`(local $x${i} i32) (local $px${i} i32) (local $vx${i} v128)`);
  for (let i = 0; i < MB_MAX; i++) for (let q = 0; q < ACC; q++) l.push(`(local $a${i}${q} v128)`);
  return l.join(' ');
}

const get = (v) => `(local.get $${v})`;
const add = (a, b) => `(i32.add ${a} ${b})`;
const c32 = (v) => `(i32.const ${v})`;
const hsum = (v) => `(f32.add (f32.add (f32x4.extract_lane 0 ${v}) (f32x4.extract_lane 1 ${v})) (f32.add (f32x4.extract_lane 2 ${v}) (f32x4.extract_lane 3 ${v})))`;

/**
 * One weight row at a time (pairs were no faster: the inputs are re-read from L1 anyway); for each,
 * every input row.
 */
function nLoop() {
  return `(block $nd (loop $nl
 (br_if $nd (i32.ge_u ${get('n')} ${get('n1')}))
 (local.set $w ${add(get('W'), `(i32.mul ${get('n')} ${get('kb')})`)})
 (local.set $b (if (result f32) ${get('bias')} (then (f32.load ${add(get('bias'), `(i32.shl ${get('n')} ${c32(2)})`)})) (else (f32.const 0))))
 (local.set $m ${get('m0')})
${indent(mLoop(MB_MAX), 1)}
${indent(mLoop(1), 1)}
 (local.set $n ${add(get('n'), c32(1))})
 (br $nl)))`;
}

/**
 * Input rows MB at a time: each 4-float group of the weight row is loaded once and used for MB input
 * rows. Each output's accumulators are filled in the same order for every block size: an output does
 * not depend on the batch it is computed in.
 */
function mLoop(MB) {
  const body = [];
  for (let u = 0; u < 4; u++) {
    const off = u * 16;
    body.push(`(local.set $vw (v128.load offset=${off} ${get('pw')}))`);
    for (let i = 0; i < MB; i++) body.push(`(local.set $vx${i} (v128.load offset=${off} ${get(`px${i}`)}))`);
    const q = u % ACC;
    for (let i = 0; i < MB; i++) body.push(`(local.set $a${i}${q} ${madd(get(`a${i}${q}`), get('vw'), get(`vx${i}`))})`);
  }
  // Walking pointers (bumped by 64 bytes per step) rather than base + index: one add per stream
  // per step instead of one per load.
  const starts = [`(local.set $pw ${get('w')})`], bumps = [];
  for (let i = 0; i < MB; i++) starts.push(`(local.set $px${i} ${get(`x${i}`)})`);
  for (const v of ['pw', ...Array.from({ length: MB }, (_, i) => `px${i}`)]) bumps.push(`(local.set $${v} ${add(get(v), c32(64))})`);
  const pre = [], post = [];
  for (let i = 0; i < MB; i++) pre.push(`(local.set $x${i} ${add(get('x'), `(i32.mul ${add(get('m'), c32(i))} ${get('kb')})`)})`);
  for (let i = 0; i < MB; i++) {
    for (let q = 0; q < ACC; q++) pre.push(`(local.set $a${i}${q} (v128.const i32x4 0 0 0 0))`);
    const at = add(get('y'), `(i32.shl ${add(`(i32.mul ${add(get('m'), c32(i))} ${get('N')})`, get('n'))} ${c32(2)})`);
    post.push(`(f32.store ${at} (f32.add ${get('b')} ${hsum(`(f32x4.add ${get(`a${i}0`)} ${get(`a${i}1`)})`)}))`);
  }
  return `(block $md${MB} (loop $ml${MB}
 (br_if $md${MB} (i32.gt_u ${add(get('m'), c32(MB))} ${get('m1')}))
 ${pre.join('\n ')}
 ${starts.join('\n ')}
 (local.set $wend ${add(get('w'), get('kb'))})
 (loop $kl${MB}
  ${body.join('\n  ')}
  ${bumps.join('\n  ')}
  (br_if $kl${MB} (i32.lt_u ${get('pw')} ${get('wend')})))
 ${post.join('\n ')}
 (local.set $m ${add(get('m'), c32(MB))})
 (br $ml${MB})))`;
}

function indent(text, n) {
  const pad = ' '.repeat(n);
  return text.split('\n').map((l) => pad + l).join('\n');
}

/**
 * transpose(src, dst, rows, cols, stride): dst[c·stride + r] = src[r·cols + c] (floats, byte
 * addresses), in 16×16 blocks so both sides stay in cache: loading turns HF's Conv1D [in, out]
 * into the kernel's [out, in] about 5× faster than the same loop in JS.
 */
const TRANSPOSE = ` (func (export "transpose") (param $src i32) (param $dst i32) (param $rows i32) (param $cols i32) (param $stride i32)
  (local $rb i32) (local $cb i32) (local $r i32) (local $c i32) (local $re i32) (local $ce i32)
  (block $rdone (loop $rloop
   (br_if $rdone (i32.ge_u (local.get $rb) (local.get $rows)))
   (local.set $re (select (i32.add (local.get $rb) (i32.const 16)) (local.get $rows)
     (i32.lt_u (i32.add (local.get $rb) (i32.const 16)) (local.get $rows))))
   (local.set $cb (i32.const 0))
   (block $cdone (loop $cloop
    (br_if $cdone (i32.ge_u (local.get $cb) (local.get $cols)))
    (local.set $ce (select (i32.add (local.get $cb) (i32.const 16)) (local.get $cols)
      (i32.lt_u (i32.add (local.get $cb) (i32.const 16)) (local.get $cols))))
    (local.set $c (local.get $cb))
    (block $bdone (loop $bc
     (br_if $bdone (i32.ge_u (local.get $c) (local.get $ce)))
     (local.set $r (local.get $rb))
     (block $idone (loop $br
      (br_if $idone (i32.ge_u (local.get $r) (local.get $re)))
      (f32.store
       (i32.add (local.get $dst) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $stride)) (local.get $r)) (i32.const 2)))
       (f32.load (i32.add (local.get $src) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $cols)) (local.get $c)) (i32.const 2)))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $br)))
     (local.set $c (i32.add (local.get $c) (i32.const 1)))
     (br $bc)))
    (local.set $cb (i32.add (local.get $cb) (i32.const 16)))
    (br $cloop)))
   (local.set $rb (i32.add (local.get $rb) (i32.const 16)))
   (br $rloop)))
 )`;


/**
 * nonfinite(p, n) → how many of the n floats at byte address p are NaN or ±Infinity (exponent bits
 * all ones), 16 at a time: the load-time weight check at memory speed (~45 ms for gpt2's 500 MB; a
 * JS loop took ~300 ms).
 */
const NONFINITE = ` (func (export "nonfinite") (param $p i32) (param $n i32) (result i32)
  (local $end i32) (local $vend i32) (local $exp v128) (local $acc v128) (local $cnt i32)
  (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
  (local.set $vend (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -16)) (i32.const 2))))
  (local.set $exp (i32x4.splat (i32.const 0x7f800000)))
  ;; 16 floats per iteration; a lane that matches is -1: subtracting counts it
  (block $vdone (loop $v
   (br_if $vdone (i32.ge_u (local.get $p) (local.get $vend)))
${[0, 16, 32, 48].map((o) => `   (local.set $acc (i32x4.sub (local.get $acc)
     (i32x4.eq (v128.and (v128.load offset=${o} (local.get $p)) (local.get $exp)) (local.get $exp))))`).join('\n')}
   (local.set $p (i32.add (local.get $p) (i32.const 64)))
   (br $v)))
  (local.set $cnt (i32.add
    (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
    (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))
  (block $sdone (loop $s
   (br_if $sdone (i32.ge_u (local.get $p) (local.get $end)))
   (local.set $cnt (i32.add (local.get $cnt)
     (i32.eq (i32.and (i32.load (local.get $p)) (i32.const 0x7f800000)) (i32.const 0x7f800000))))
   (local.set $p (i32.add (local.get $p) (i32.const 4)))
   (br $s)))
  (local.get $cnt)
 )`;
