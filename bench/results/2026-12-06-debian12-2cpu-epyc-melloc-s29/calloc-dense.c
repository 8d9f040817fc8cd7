#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(int argc,char**argv){ size_t sz=strtoull(argv[1],0,0); int n=atoi(argv[2]); size_t sum=0;
 for(int i=0;i<n;i++){ char*p=calloc(1,sz); for(size_t j=0;j<sz;j+=4096) p[j]+=1; sum+=p[(i*4099)%sz]; free(p);} printf("%zu\n",sum); return 0;}
