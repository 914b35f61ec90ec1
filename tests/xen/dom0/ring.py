#!/usr/bin/env python3
"""Raw read of a guest's PV console page from dom0, read-only (the lab's ground truth).

    ring.py DOMID [--via gnttab|foreign] [--lib ctypes|cffi] [--count N --interval S] [--tail N]
    ring.py DOMID --set-byte 3088=1      # write one byte of the page (foreign map, writable)

Prints one JSON object per sample: the four indices, fills, byte 3088, and with
--tail the last N bytes written to the out ring (decoded leniently).
ctypes is the default because it starts fast under TCG (cffi's cdef parsing costs
seconds there); --lib cffi uses cffi's ABI mode (ffi.dlopen), as xcinspect does.
"""
import argparse
import ctypes
import json
import struct
import subprocess
import sys
import time

CDEF = ("""
typedef struct xengnttab_handle xengnttab_handle;
xengnttab_handle *xengnttab_open(void *logger, unsigned open_flags);
int xengnttab_close(xengnttab_handle *xgt);
void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot);
int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count);
typedef struct xenforeignmemory_handle xenforeignmemory_handle;
xenforeignmemory_handle *xenforeignmemory_open(void *logger, unsigned open_flags);
int xenforeignmemory_close(xenforeignmemory_handle *fmem);
void *xenforeignmemory_map(xenforeignmemory_handle *fmem, uint32_t dom, int prot,
                           size_t pages, const unsigned long arr[], int err[]);
int xenforeignmemory_unmap(xenforeignmemory_handle *fmem, void *addr, size_t pages);
""")
ffi = None
PROT_READ = 1
PROT_WRITE = 2
IDX = struct.Struct("<4I")


def ring_ref(domid):
    return int(subprocess.check_output(
        ["xenstore-read", f"/local/domain/{domid}/console/ring-ref"], text=True).strip())


def map_page_ctypes(domid, via):
    """Map the page read-only with ctypes; return its 4096 bytes reader."""
    c = ctypes
    if via == "gnttab":
        lib = c.CDLL("libxengnttab.so.1", use_errno=True)
        lib.xengnttab_open.restype = c.c_void_p
        lib.xengnttab_open.argtypes = [c.c_void_p, c.c_uint]
        lib.xengnttab_map_grant_ref.restype = c.c_void_p
        lib.xengnttab_map_grant_ref.argtypes = [c.c_void_p, c.c_uint32, c.c_uint32, c.c_int]
        h = lib.xengnttab_open(None, 0)
        if not h:
            sys.exit("ring.py: xengnttab_open failed")
        p = lib.xengnttab_map_grant_ref(h, domid, 0, PROT_READ)
        if not p:
            sys.exit(f"ring.py: map grant ref 0 of dom{domid} failed (errno {c.get_errno()})")
    else:
        lib = c.CDLL("libxenforeignmemory.so.1", use_errno=True)
        lib.xenforeignmemory_open.restype = c.c_void_p
        lib.xenforeignmemory_open.argtypes = [c.c_void_p, c.c_uint]
        lib.xenforeignmemory_map.restype = c.c_void_p
        lib.xenforeignmemory_map.argtypes = [c.c_void_p, c.c_uint32, c.c_int, c.c_size_t,
                                             c.POINTER(c.c_ulong), c.POINTER(c.c_int)]
        h = lib.xenforeignmemory_open(None, 0)
        if not h:
            sys.exit("ring.py: xenforeignmemory_open failed")
        ref = ring_ref(domid)
        arr = (c.c_ulong * 1)(ref)
        err = (c.c_int * 1)()
        p = lib.xenforeignmemory_map(h, domid, PROT_READ, 1, arr, err)
        if not p or err[0]:
            sys.exit(f"ring.py: foreign map of dom{domid} mfn {ref} failed ({err[0]}, errno {c.get_errno()})")
    return lambda: c.string_at(p, 4096)


def set_byte(domid, offset, value):
    """Write one byte of the console page through a writable foreign map of ring-ref
    (libxenforeignmemory, PROT_READ|PROT_WRITE): the lab's way to play a toolstack."""
    c = ctypes
    if not 0 <= offset < 4096 or not 0 <= value < 256:
        sys.exit("ring.py: --set-byte OFFSET=VALUE with 0 <= OFFSET < 4096, 0 <= VALUE < 256")
    lib = c.CDLL("libxenforeignmemory.so.1", use_errno=True)
    lib.xenforeignmemory_open.restype = c.c_void_p
    lib.xenforeignmemory_open.argtypes = [c.c_void_p, c.c_uint]
    lib.xenforeignmemory_map.restype = c.c_void_p
    lib.xenforeignmemory_map.argtypes = [c.c_void_p, c.c_uint32, c.c_int, c.c_size_t,
                                         c.POINTER(c.c_ulong), c.POINTER(c.c_int)]
    lib.xenforeignmemory_unmap.argtypes = [c.c_void_p, c.c_void_p, c.c_size_t]
    h = lib.xenforeignmemory_open(None, 0)
    if not h:
        sys.exit("ring.py: xenforeignmemory_open failed")
    arr = (c.c_ulong * 1)(ring_ref(domid))
    err = (c.c_int * 1)()
    p = lib.xenforeignmemory_map(h, domid, PROT_READ | PROT_WRITE, 1, arr, err)
    if not p or err[0]:
        sys.exit(f"ring.py: writable foreign map of dom{domid} failed ({err[0]}, errno {c.get_errno()})")
    page = (c.c_uint8 * 4096).from_address(p)
    old = page[offset]
    page[offset] = value
    new = page[offset]
    lib.xenforeignmemory_unmap(h, p, 1)
    print(json.dumps({"domid": domid, "offset": offset, "old": old, "new": new}), flush=True)
    if new != value:
        sys.exit(f"ring.py: byte {offset} reads {new} after writing {value}")


def map_page_cffi(domid, via):
    global ffi
    from cffi import FFI
    ffi = FFI()
    ffi.cdef(CDEF)
    p = map_page(domid, via)
    return lambda: bytes(ffi.buffer(p, 4096))


def map_page(domid, via):
    if via == "gnttab":
        lib = ffi.dlopen("libxengnttab.so.1")
        h = lib.xengnttab_open(ffi.NULL, 0)
        if h == ffi.NULL:
            sys.exit("ring.py: xengnttab_open failed")
        p = lib.xengnttab_map_grant_ref(h, domid, 0, PROT_READ)
        if p == ffi.NULL:
            sys.exit(f"ring.py: map grant ref 0 of dom{domid} failed (errno {ffi.errno})")
        return p
    lib = ffi.dlopen("libxenforeignmemory.so.1")
    h = lib.xenforeignmemory_open(ffi.NULL, 0)
    if h == ffi.NULL:
        sys.exit("ring.py: xenforeignmemory_open failed")
    ref = ring_ref(domid)
    arr = ffi.new("unsigned long[1]", [ref])
    err = ffi.new("int[1]")
    p = lib.xenforeignmemory_map(h, domid, PROT_READ, 1, arr, err)
    if p == ffi.NULL or err[0]:
        sys.exit(f"ring.py: foreign map of dom{domid} mfn {ref} failed ({err[0]}, errno {ffi.errno})")
    return p


def sample(read, domid, via, lib, tail):
    raw = read()
    in_cons, in_prod, out_cons, out_prod = IDX.unpack_from(raw, 3072)
    d = {"domid": domid, "via": via, "lib": lib,
         "in_cons": in_cons, "in_prod": in_prod, "out_cons": out_cons, "out_prod": out_prod,
         "out_fill": (out_prod - out_cons) & 0xFFFFFFFF, "in_fill": (in_prod - in_cons) & 0xFFFFFFFF,
         "byte3088": raw[3088], "t": round(time.monotonic(), 3)}
    if tail:
        n = min(tail, d["out_fill"] if d["out_fill"] <= 2048 else 0) or min(tail, 2048)
        out = raw[1024:3072]
        data = bytes(out[(out_prod - n + i) & 2047] for i in range(n))
        d["out_tail"] = data.decode("utf-8", "replace")
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("domid", type=int)
    ap.add_argument("--via", choices=["gnttab", "foreign"], default="gnttab")
    ap.add_argument("--lib", choices=["ctypes", "cffi"], default="ctypes")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--tail", type=int, default=0)
    ap.add_argument("--set-byte", metavar="OFFSET=VALUE", default=None)
    a = ap.parse_args()
    if a.set_byte:
        off, _, val = a.set_byte.partition("=")
        set_byte(a.domid, int(off, 0), int(val, 0))
        return
    read = (map_page_cffi if a.lib == "cffi" else map_page_ctypes)(a.domid, a.via)
    for i in range(a.count):
        if i:
            time.sleep(a.interval)
        print(json.dumps(sample(read, a.domid, a.via, a.lib, a.tail)), flush=True)


if __name__ == "__main__":
    main()
