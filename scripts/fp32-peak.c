// FP32 peak of this CPU: ten independent AVX-512 FMA chains per thread, register-resident.
//   gcc -O2 -mavx512f -o /tmp/fp32-peak scripts/fp32-peak.c -lpthread && /tmp/fp32-peak 2
// prints GFLOP/s for the given number of threads (one per core). docs/benchmarks.md quotes it.
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
#define N 200000000L
static double secs(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void* run(void* out){
  __m512 a=_mm512_set1_ps(0.999999f), b=_mm512_set1_ps(1e-7f);
  __m512 c0=_mm512_set1_ps(1),c1=c0,c2=c0,c3=c0,c4=c0,c5=c0,c6=c0,c7=c0,c8=c0,c9=c0;
  for(long i=0;i<N;i++){
    c0=_mm512_fmadd_ps(c0,a,b);c1=_mm512_fmadd_ps(c1,a,b);c2=_mm512_fmadd_ps(c2,a,b);c3=_mm512_fmadd_ps(c3,a,b);c4=_mm512_fmadd_ps(c4,a,b);
    c5=_mm512_fmadd_ps(c5,a,b);c6=_mm512_fmadd_ps(c6,a,b);c7=_mm512_fmadd_ps(c7,a,b);c8=_mm512_fmadd_ps(c8,a,b);c9=_mm512_fmadd_ps(c9,a,b);
  }
  __m512 s=_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0,c1),_mm512_add_ps(c2,c3)),_mm512_add_ps(_mm512_add_ps(c4,c5),_mm512_add_ps(_mm512_add_ps(c6,c7),_mm512_add_ps(c8,c9))));
  *(float*)out=_mm512_reduce_add_ps(s); return 0;
}
int main(int argc,char**argv){
  int t=argc>1?atoi(argv[1]):1; pthread_t th[8]; float o[8];
  double s=secs(); for(int i=0;i<t;i++)pthread_create(&th[i],0,run,&o[i]); for(int i=0;i<t;i++)pthread_join(th[i],0);
  double e=secs()-s; double flop=(double)t*N*10*16*2;
  printf("threads=%d %.1f GFLOP/s (%.3f s) %f\n",t,flop/e/1e9,e,o[0]);
}
