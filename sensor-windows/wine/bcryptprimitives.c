/* Test-harness shim for Wine 8 (Debian 12), which lacks bcryptprimitives.dll.
 * Rust's std (1.78+) takes its random bytes from bcryptprimitives!ProcessPrng;
 * without this DLL no Rust test binary for x86_64-pc-windows-gnu starts under
 * Wine 8. Real Windows (10+) and Wine 9+ have the DLL; this is never shipped.
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll \
 *          bcryptprimitives.c bcryptprimitives.def -ladvapi32
 */
#include <windows.h>

/* advapi32!SystemFunction036, documented as RtlGenRandom. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
