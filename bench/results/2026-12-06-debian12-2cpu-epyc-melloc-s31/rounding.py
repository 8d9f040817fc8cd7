# rounding.py TRACE...: at each trace's peak of live bytes, the bytes melloc's size classes (those of
# 5f7f08e) and glibc's chunks (16-byte steps, 32 at least) give the live blocks, and the classes where
# melloc's rounding exceeds glibc's most.
import struct,collections,bisect,sys,mmap
sizes=[0, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 288, 320, 384, 448, 512, 576, 640, 768, 896, 1024, 1152, 1280, 1536, 1792, 2048, 2304, 2560, 3072, 3584, 4096, 4608, 5120, 6144, 7168, 8192, 9216, 10240, 12288, 14336, 16384]
def mcls(n):
    if n<=16384: return sizes[bisect.bisect_left(sizes,max(n,1))]
    return (n+4095)//4096*4096
def gcls(n): return max(32,(n+8+15)//16*16) if n < 128*1024 else (n+4096+4095)//4096*4096
for path in sys.argv[1:]:
    d=open(path,'rb').read(); n=len(d)//32
    live={}; cur=0; peak=0; pk=0
    for k in range(n):
        op,th,ptr,sz,aux=struct.unpack_from('<B3xIQQQ',d,k*32)
        if op==4: cur-=live.pop(ptr,0)
        elif op==3:
            cur-=live.pop(aux,0)
            if ptr: live[ptr]=sz; cur+=sz
        else: live[ptr]=sz; cur+=sz
        if cur>peak: peak=cur; pk=k
    live={}
    for k in range(pk+1):
        op,th,ptr,sz,aux=struct.unpack_from('<B3xIQQQ',d,k*32)
        if op==4: live.pop(ptr,0)
        elif op==3:
            live.pop(aux,0)
            if ptr: live[ptr]=sz
        else: live[ptr]=sz
    m=sum(mcls(s) for s in live.values()); g=sum(gcls(s) for s in live.values()); b=sum(live.values())
    waste=collections.Counter()
    for s in live.values(): waste[mcls(s) if s<=16384 else 'large']+=mcls(s)-gcls(s)
    print(f"{path.split('/')[-1]:16s} live {b/2**20:7.1f} MiB in {len(live)} blocks; melloc classes {m/2**20:7.1f} glibc chunks {g/2**20:7.1f}  diff {(m-g)/2**20:5.1f}; top", [(k,round(v/2**20,2)) for k,v in waste.most_common(4)])
