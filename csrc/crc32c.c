/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
 * every shmsock record (its payload, then its header fields: rec_crc_from in
 * shmring.c).  This is the one definition the ring uses;
 * the test suite checks it against the crc32c package byte for byte.
 *
 * On x86-64 CPUs with SSE4.2 the crc32 instruction does eight bytes per
 * step, in three interleaved streams; elsewhere a byte-wise table is used.  Computing it here rather than
 * through the crc32c package lets a batch of records be checksummed inside
 * the one C call that writes or reads it (see docs/performance.md).
 */
#include "shmring.h"

static const uint32_t crc_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu,
    0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
    0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu,
    0xf165b798u, 0x030e349bu, 0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
    0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
    0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
    0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
    0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
    0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu,
    0x1642ae59u, 0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
    0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu,
    0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
    0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu,
    0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
    0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
    0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
    0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu,
    0x4767748au, 0xb50cf789u, 0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
    0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu,
    0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
    0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
    0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
    0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u,
    0xe9141340u, 0x1b7f9043u, 0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
    0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
    0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
    0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u, 0x502036a5u,
    0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u,
    0x0e330a81u, 0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
    0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u,
    0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
    0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u,
    0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
    0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
    0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u,
    0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
    0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u,
    0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
    0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au, 0xc69f7b69u,
    0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
    0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

/*
 * Three independent crc32 streams hide the instruction's three-cycle
 * latency.  Each round checksums three adjacent blocks of BLOCK bytes, then
 * folds them together: the CRC register is linear, so
 *     crc(A B) = shift(crc(A), |B|) ^ crc0(B)
 * where crc0 starts from a zero register and shift() runs the register over
 * |B| zero bytes.  shift() for BLOCK bytes is a 32x32 matrix over GF(2),
 * tabulated per input byte at load time.
 */
#define BLOCK 256

static uint32_t shift_table[4][256];

/* Multiply the GF(2) matrix `mat` (32 columns) by vector `vec`. */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;
    for (; vec; vec >>= 1, mat++)
        if (vec & 1)
            sum ^= *mat;
    return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat)
{
    for (int n = 0; n < 32; n++)
        square[n] = gf2_times(mat, mat[n]);
}

__attribute__((constructor))
static void build_shift_table(void)
{
    /* Operator for one zero bit, squared up to BLOCK * 8 bits. */
    uint32_t op[32], sq[32];
    op[0] = 0x82f63b78u;
    for (int n = 1; n < 32; n++)
        op[n] = 1u << (n - 1);
    for (unsigned bits = 1; bits < BLOCK * 8; bits <<= 1) {
        gf2_square(sq, op);
        memcpy(op, sq, sizeof op);
    }
    for (int k = 0; k < 4; k++)
        for (uint32_t i = 0; i < 256; i++)
            shift_table[k][i] = gf2_times(op, i << (8 * k));
}

static inline uint32_t shift_block(uint32_t crc)
{
    return shift_table[0][crc & 0xff] ^ shift_table[1][(crc >> 8) & 0xff] ^
           shift_table[2][(crc >> 16) & 0xff] ^ shift_table[3][crc >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c0 = crc;
    while (n && ((uintptr_t)p & 7u)) {
        c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
        n--;
    }
    while (n >= 3 * BLOCK) {
        uint64_t c1 = 0, c2 = 0, w0, w1, w2;
        const uint8_t *end = p + BLOCK;
        do {
            memcpy(&w0, p, 8);
            memcpy(&w1, p + BLOCK, 8);
            memcpy(&w2, p + 2 * BLOCK, 8);
            c0 = __builtin_ia32_crc32di(c0, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
            p += 8;
        } while (p < end);
        c0 = shift_block((uint32_t)c0) ^ (uint32_t)c1;
        c0 = shift_block((uint32_t)c0) ^ (uint32_t)c2;
        p += 2 * BLOCK;
        n -= 3 * BLOCK;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c0 = __builtin_ia32_crc32di(c0, w);
        p += 8;
        n -= 8;
    }
    while (n--)
        c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
    return (uint32_t)c0;
}

/*
 * crc32c_hw fused with a copy: every word is loaded once, stored to dst and
 * fed to the crc32 instruction from the same register.  A separate memcpy
 * and checksum read the source twice; for a frame that is not in the cache
 * (a bulk extent the other core wrote) the copy is bound by memory, and
 * the checksum then costs almost nothing on top of it.  The CRC is that of
 * the bytes stored, so a reader checking its private copy checks exactly
 * what landed in dst.
 */
__attribute__((target("sse4.2")))
static uint32_t crc32c_copy_hw(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t n)
{
    uint64_t c0 = crc;
    while (n && ((uintptr_t)src & 7u)) {
        uint8_t b = *src++;
        *dst++ = b;
        c0 = __builtin_ia32_crc32qi((uint32_t)c0, b);
        n--;
    }
    while (n >= 3 * BLOCK) {
        uint64_t c1 = 0, c2 = 0, w0, w1, w2;
        const uint8_t *end = src + BLOCK;
        do {
            memcpy(&w0, src, 8);
            memcpy(&w1, src + BLOCK, 8);
            memcpy(&w2, src + 2 * BLOCK, 8);
            memcpy(dst, &w0, 8);
            memcpy(dst + BLOCK, &w1, 8);
            memcpy(dst + 2 * BLOCK, &w2, 8);
            c0 = __builtin_ia32_crc32di(c0, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
            src += 8;
            dst += 8;
        } while (src < end);
        c0 = shift_block((uint32_t)c0) ^ (uint32_t)c1;
        c0 = shift_block((uint32_t)c0) ^ (uint32_t)c2;
        src += 2 * BLOCK;
        dst += 2 * BLOCK;
        n -= 3 * BLOCK;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, src, 8);
        memcpy(dst, &w, 8);
        c0 = __builtin_ia32_crc32di(c0, w);
        src += 8;
        dst += 8;
        n -= 8;
    }
    while (n--) {
        uint8_t b = *src++;
        *dst++ = b;
        c0 = __builtin_ia32_crc32qi((uint32_t)c0, b);
    }
    return (uint32_t)c0;
}

/*
 * The copies of frames far larger than the L2 cache (csrc/shmbulk.c, bulk
 * extents above 2 MiB) store with non-temporal writes: the destination's
 * lines are written whole, straight to memory, instead of each being read
 * first (a "read for ownership") and evicting something else later.  The
 * destination is aligned to 16 bytes by ordinary stores first; the sfence
 * at the end orders the streamed stores before the release that publishes
 * them (they are weakly ordered otherwise).  Each word is checksummed
 * from the register it is stored from, as in crc32c_copy_hw;
 * `crc` is the pre-inverted register, and the register is returned.
 */
__attribute__((target("sse4.2")))
static uint32_t copy_stream_hw(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t n)
{
    uint64_t c0 = crc;
    while (n && ((uintptr_t)dst & 15u)) {
        uint8_t b = *src++;
        *dst++ = b;
        c0 = __builtin_ia32_crc32qi((uint32_t)c0, b);
        n--;
    }
    while (n >= 3 * BLOCK) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *end = src + BLOCK;
        do {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + BLOCK));
            __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(src + 2 * BLOCK));
            _mm_stream_si128((__m128i *)(void *)dst, a);
            _mm_stream_si128((__m128i *)(void *)(dst + BLOCK), b);
            _mm_stream_si128((__m128i *)(void *)(dst + 2 * BLOCK), c);
            c0 = __builtin_ia32_crc32di(c0, (uint64_t)_mm_cvtsi128_si64(a));
            c1 = __builtin_ia32_crc32di(c1, (uint64_t)_mm_cvtsi128_si64(b));
            c2 = __builtin_ia32_crc32di(c2, (uint64_t)_mm_cvtsi128_si64(c));
            c0 = __builtin_ia32_crc32di(c0, (uint64_t)_mm_extract_epi64(a, 1));
            c1 = __builtin_ia32_crc32di(c1, (uint64_t)_mm_extract_epi64(b, 1));
            c2 = __builtin_ia32_crc32di(c2, (uint64_t)_mm_extract_epi64(c, 1));
            src += 16;
            dst += 16;
        } while (src < end);
        c0 = shift_block((uint32_t)c0) ^ (uint32_t)c1;
        c0 = shift_block((uint32_t)c0) ^ (uint32_t)c2;
        src += 2 * BLOCK;
        dst += 2 * BLOCK;
        n -= 3 * BLOCK;
    }
    _mm_sfence();
    /* The tail, under three blocks, is the cached copy's own. */
    return crc32c_copy_hw((uint32_t)c0, dst, src, n);
}

/*
 * With AVX-512 and VPCLMULQDQ, frames of FOLD_MIN bytes and more are
 * checksummed by folding instead of by the crc32 instruction.  The crc32
 * loops above spend six extracts and six crc32s on every 48 bytes, and
 * fused with a copy they ran at 11-17 GB/s against 14-42 GB/s for the copy
 * alone; folding spends two carry-less multiplies and one three-way XOR on
 * every 64 bytes, so the copy sets the pace.
 *
 * Sixteen 128-bit lanes (four zmm registers, 256 consecutive bytes) each
 * hold a value congruent, modulo the polynomial, to everything folded into
 * it; each step multiplies a lane by x^2048 (the distance to the lane 256
 * bytes on: its low half by FOLD_K1 = x^(2048+63) mod P, its high half by
 * FOLD_K2 = x^2047 mod P, both bit-reflected into the high 32 bits of a
 * 64-bit word) and adds the next 256 bytes.  The 256 bytes of lanes left at
 * the end are congruent to the whole input aligned at its end, so their
 * CRC (from a zero register) is the input's: the crc32 loop takes it, and
 * the tail under 256 bytes.  The incoming register is added to the first
 * four bytes, which is what the crc32 instruction does with it.  The
 * constants and this reduction are checked against the crc32c package by
 * tests/ring/test_ring.py, at the lengths around the fold's edges.  The
 * callers give it FOLD_MIN bytes or more (it needs 256).
 */
#define FOLD_MIN 8192
#define FOLD_K1 0xe9a5d8be00000000ull
#define FOLD_K2 0x1426a81500000000ull

enum { FOLD_NO_STORE, FOLD_STORE, FOLD_STREAM };

__attribute__((target("avx512f,vpclmulqdq,sse4.2"), always_inline)) static inline uint32_t
fold_hw(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t n, int mode)
{
    const __m512i k = _mm512_set_epi64((long long)FOLD_K2, (long long)FOLD_K1,
                                       (long long)FOLD_K2, (long long)FOLD_K1,
                                       (long long)FOLD_K2, (long long)FOLD_K1,
                                       (long long)FOLD_K2, (long long)FOLD_K1);
    __m512i a0 = _mm512_loadu_si512((const void *)src);
    __m512i a1 = _mm512_loadu_si512((const void *)(src + 64));
    __m512i a2 = _mm512_loadu_si512((const void *)(src + 128));
    __m512i a3 = _mm512_loadu_si512((const void *)(src + 192));
#define FOLD_PUT(d, v)                                                                      \
    do {                                                                                    \
        if (mode == FOLD_STREAM)                                                            \
            _mm512_stream_si512((void *)(d), (v));                                          \
        else if (mode == FOLD_STORE)                                                        \
            _mm512_storeu_si512((void *)(d), (v));                                          \
    } while (0)
    FOLD_PUT(dst, a0);
    FOLD_PUT(dst + 64, a1);
    FOLD_PUT(dst + 128, a2);
    FOLD_PUT(dst + 192, a3);
    a0 = _mm512_xor_si512(a0, _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, (long long)crc));
    src += 256;
    dst += 256;
    n -= 256;
    while (n >= 256) {
        __m512i d0 = _mm512_loadu_si512((const void *)src);
        __m512i d1 = _mm512_loadu_si512((const void *)(src + 64));
        __m512i d2 = _mm512_loadu_si512((const void *)(src + 128));
        __m512i d3 = _mm512_loadu_si512((const void *)(src + 192));
        FOLD_PUT(dst, d0);
        FOLD_PUT(dst + 64, d1);
        FOLD_PUT(dst + 128, d2);
        FOLD_PUT(dst + 192, d3);
        a0 = _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(a0, k, 0x00),
                                       _mm512_clmulepi64_epi128(a0, k, 0x11), d0, 0x96);
        a1 = _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(a1, k, 0x00),
                                       _mm512_clmulepi64_epi128(a1, k, 0x11), d1, 0x96);
        a2 = _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(a2, k, 0x00),
                                       _mm512_clmulepi64_epi128(a2, k, 0x11), d2, 0x96);
        a3 = _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(a3, k, 0x00),
                                       _mm512_clmulepi64_epi128(a3, k, 0x11), d3, 0x96);
        src += 256;
        dst += 256;
        n -= 256;
    }
#undef FOLD_PUT
    if (mode == FOLD_STREAM)
        _mm_sfence();
    uint8_t lanes[256] __attribute__((aligned(64)));
    _mm512_store_si512((void *)lanes, a0);
    _mm512_store_si512((void *)(lanes + 64), a1);
    _mm512_store_si512((void *)(lanes + 128), a2);
    _mm512_store_si512((void *)(lanes + 192), a3);
    uint32_t c = crc32c_hw(0, lanes, sizeof lanes);
    if (mode == FOLD_NO_STORE)
        return crc32c_hw(c, src, n);
    return crc32c_copy_hw(c, dst, src, n);
}

__attribute__((target("avx512f,vpclmulqdq,sse4.2"))) static uint32_t
fold_crc(uint32_t crc, const uint8_t *p, size_t n)
{
    return fold_hw(crc, (uint8_t *)(uintptr_t)p, p, n, FOLD_NO_STORE); /* never written */
}

__attribute__((target("avx512f,vpclmulqdq,sse4.2"))) static uint32_t
fold_copy(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t n)
{
    return fold_hw(crc, dst, src, n, FOLD_STORE);
}

/* The streamed fold: the destination is aligned to 64 bytes by the cached
 * copy first, as _mm512_stream_si512 needs. */
__attribute__((target("avx512f,vpclmulqdq,sse4.2"))) static uint32_t
fold_copy_stream(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t n)
{
    size_t head = (64 - ((uintptr_t)dst & 63u)) & 63u;
    crc = crc32c_copy_hw(crc, dst, src, head);
    return fold_hw(crc, dst + head, src + head, n - head, FOLD_STREAM);
}

/* Whether the folding code can run here: the CPU has the instructions and
 * the kernel saves the zmm registers (both in __builtin_cpu_supports). */
static int has_fold(void)
{
    static int known = -1;
    int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (k < 0) {
        k = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq") &&
            __builtin_cpu_supports("sse4.2") && !getenv("SHMSOCK_NO_FOLD");
        __atomic_store_n(&known, k, __ATOMIC_RELAXED);
    }
    return k;
}

uint32_t shm_crc32c_copy_stream(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t len)
{
    if (len >= FOLD_MIN && has_fold())
        return ~fold_copy_stream(~crc, dst, src, len);
    if (__builtin_cpu_supports("sse4.2"))
        return ~copy_stream_hw(~crc, dst, src, len);
    memcpy(dst, src, len);
    return ~crc32c_sw(~crc, dst, len);
}

uint32_t shm_crc32c(uint32_t crc, const uint8_t *buf, size_t len)
{
    crc = ~crc;
    if (len >= FOLD_MIN && has_fold())
        crc = fold_crc(crc, buf, len);
    else if (__builtin_cpu_supports("sse4.2"))
        crc = crc32c_hw(crc, buf, len);
    else
        crc = crc32c_sw(crc, buf, len);
    return ~crc;
}

uint32_t shm_crc32c_copy(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t len)
{
    if (len >= FOLD_MIN && has_fold())
        return ~fold_copy(~crc, dst, src, len);
    if (__builtin_cpu_supports("sse4.2"))
        return ~crc32c_copy_hw(~crc, dst, src, len);
    memcpy(dst, src, len);
    return ~crc32c_sw(~crc, dst, len);
}
#else
#include <string.h>

uint32_t shm_crc32c(uint32_t crc, const uint8_t *buf, size_t len)
{
    return ~crc32c_sw(~crc, buf, len);
}

uint32_t shm_crc32c_copy(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t len)
{
    memcpy(dst, src, len);
    return ~crc32c_sw(~crc, dst, len);
}

uint32_t shm_crc32c_copy_stream(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t len)
{
    return shm_crc32c_copy(crc, dst, src, len);
}
#endif
