#!/usr/bin/env python3
# sweep.py N name=lib ... : N interleaved runs of real multi-threaded programs under each library
# ("g=" for glibc); medians of wall, CPU and peak RSS (from /usr/bin/time).  As used in session 31:
# /tmp/sw/text.txt is 600000 lines of 3-15 random words (45 MB), /tmp/sw/repo.git a copy of this
# repository's .git; W=name,name picks programs.
import sys, os, statistics, subprocess, resource, time
a=sys.argv[1:]; n=int(a[0]); libs=[x.split('=',1) for x in a[1:]]
W=[
 ("xz-T2", "xz -T2 -6 -c /tmp/sw/text.txt > /dev/null"),
 ("zstd-T2", "zstd -T2 -10 -c /tmp/sw/text.txt > /dev/null"),
 ("sort-par2", "sort --parallel=2 -S 64M /tmp/sw/text.txt > /dev/null"),
 ("gitgrep", "git -C /work/main grep --threads=2 -c -e mlc -e free HEAD~20 > /dev/null"),
 ("gitrepack", "git -C /tmp/sw/repo.git repack -adfq --threads=2 --window=50"),
 ("pythr", "python3 -c \"import concurrent.futures as c\ndef f(k):\n d={}\n for i in range(200000): d[str(i*k)]=[i]*3\n return len(d)\nwith c.ThreadPoolExecutor(4) as e: print(sum(e.map(f,range(8))))\""),
 ("node", "node -e \"let a=[];for(let i=0;i<300000;i++)a.push({k:'x'+i,v:[i,i+1]});console.log(JSON.stringify(a).length)\""),
]
sel=os.environ.get('W')
if sel: W=[w for w in W if w[0] in sel.split(',')]
for name,cmd in W:
    res={l[0]:[] for l in libs}
    for r in range(n):
        for ln,lib in libs:
            env=dict(os.environ)
            if '@' in lib:
                lib,kv=lib.split('@',1); k,v=kv.split('=',1); env[k]=v
            if lib: env['LD_PRELOAD']=lib
            t=time.time(); p=subprocess.run(['/usr/bin/time','-f','%U %S %M','-o','/tmp/sw/t.out','bash','-c',cmd],env=env,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
            w=time.time()-t
            u,s,m=open('/tmp/sw/t.out').read().split()[-3:]
            res[ln].append((w,float(u)+float(s),int(m)/1024))
    out=[]
    for ln,_ in libs:
        m=[statistics.median(x[k] for x in res[ln]) for k in range(3)]
        out.append(f"{ln} {m[0]:.3f}s cpu {m[1]:.3f} {m[2]:6.1f}MiB")
    print(f"{name:10s} | "+" | ".join(out), flush=True)
