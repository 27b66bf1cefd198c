// main.m drives onionlite's gobind Objective-C binding with clang and
// GNUstep on Linux (manual retain/release, GCC runtime: see
// docs/mobile.md), against the test network that the Go test
// (objc_test.go) runs. It writes the 1 MiB body fetched three ways
// (through the SOCKS port, a Stream, Download) into OUT_DIR for the Go test
// to hash, prints result lines, and ends with "OK"; a failure prints
// "FAIL: ..." and exits 1.
//
// usage: main AUTHORITIES_FILE DATA_DIR HOST:PORT OUT_DIR
#import <Foundation/Foundation.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#import "Onionlite.objc.h"

// The GCC runtime registers classes after gobind's own constructors ran,
// so the reference tracker must be made again here (docs/mobile.md).
extern void init_seq(void);

static void fail(NSString *what) {
  printf("FAIL: %s\n", [what UTF8String]);
  fflush(stdout);
  exit(1);
}

static void check(BOOL ok, NSString *what) {
  if (!ok) {
    fail(what);
  }
}

static NSString *kindOf(NSError *err) {
  return OnionliteErrorKind([err localizedDescription]);
}

static pthread_t mainThread;

@interface Listener : NSObject <OnionliteProgressListener> {
 @public
  NSLock *lock;
  int count;
  int onMain;
  NSString *last;
}
@end

@implementation Listener
- (id)init {
  self = [super init];
  if (self) {
    lock = [[NSLock alloc] init];
  }
  return self;
}

- (BOOL)onProgress:(OnionliteProgress *)p error:(NSError **)error {
  [lock lock];
  count++;
  if (pthread_equal(pthread_self(), mainThread)) {
    onMain++;
  }
  [last release];
  last = [[NSString alloc] initWithFormat:@"%@ %lld %lld", [p phase], (long long)[p percent],
                                          (long long)[p dirBytes]];
  int n = count;
  [lock unlock];
  if (n == 1) {
    // The first report fails: Go must log the error and carry on.
    *error = [NSError errorWithDomain:@"objc"
                                 code:1
                             userInfo:[NSDictionary dictionaryWithObject:@"objc listener says no"
                                                                  forKey:NSLocalizedDescriptionKey]];
    return NO;
  }
  return YES;
}
@end

@interface Logger : NSObject <OnionliteLogger> {
 @public
  NSLock *lock;
  NSMutableArray *lines;
}
@end

@implementation Logger
- (id)init {
  self = [super init];
  if (self) {
    lock = [[NSLock alloc] init];
    lines = [[NSMutableArray alloc] init];
  }
  return self;
}

- (BOOL)log:(int64_t)level message:(NSString *)message error:(NSError **)error {
  [lock lock];
  [lines addObject:[NSString stringWithFormat:@"%lld %@", (long long)level, message]];
  [lock unlock];
  return YES;
}

- (BOOL)saw:(NSString *)needle level:(int64_t)level {
  NSString *prefix = [NSString stringWithFormat:@"%lld ", (long long)level];
  BOOL found = NO;
  [lock lock];
  for (NSString *l in lines) {
    if ([l hasPrefix:prefix] && [l rangeOfString:needle].location != NSNotFound) {
      found = YES;
    }
  }
  [lock unlock];
  return found;
}
@end

// socksFetch fetches http://target/1MiB.bin through the SOCKS5 port at
// socksPort (host name sent to the proxy, as URLSession does with remote
// resolution) and writes the response body to path.
static void socksFetch(int socksPort, NSString *target, NSString *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(socksPort);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  check(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, @"connect to the SOCKS port");
  unsigned char hello[] = {5, 1, 0}, reply[512];
  check(write(fd, hello, 3) == 3 && read(fd, reply, 2) == 2 && reply[0] == 5 && reply[1] == 0, @"SOCKS5 greeting");
  NSRange colon = [target rangeOfString:@":" options:NSBackwardsSearch];
  const char *host = [[target substringToIndex:colon.location] UTF8String];
  int port = [[target substringFromIndex:colon.location + 1] intValue];
  unsigned char req[300];
  size_t hl = strlen(host), n = 0;
  req[n++] = 5, req[n++] = 1, req[n++] = 0, req[n++] = 3, req[n++] = (unsigned char)hl;
  memcpy(req + n, host, hl), n += hl;
  req[n++] = (unsigned char)(port >> 8), req[n++] = (unsigned char)port;
  check(write(fd, req, n) == (ssize_t)n, @"SOCKS5 request");
  // Reply: VER REP RSV ATYP(1: IPv4) ADDR(4) PORT(2).
  size_t got = 0;
  while (got < 10) {
    ssize_t r = read(fd, reply + got, 10 - got);
    check(r > 0, @"SOCKS5 reply");
    got += (size_t)r;
  }
  check(reply[1] == 0, [NSString stringWithFormat:@"SOCKS5 reply code %d", reply[1]]);
  NSString *get = [NSString stringWithFormat:@"GET /1MiB.bin HTTP/1.0\r\nHost: %@\r\n\r\n", target];
  const char *g = [get UTF8String];
  check(write(fd, g, strlen(g)) == (ssize_t)strlen(g), @"HTTP request");
  NSMutableData *all = [NSMutableData data];
  char buf[16384];
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0) {
    [all appendBytes:buf length:(NSUInteger)r];
  }
  close(fd);
  NSData *sep = [@"\r\n\r\n" dataUsingEncoding:NSASCIIStringEncoding];
  NSRange hdr = [all rangeOfData:sep options:0 range:NSMakeRange(0, [all length])];
  check(hdr.location != NSNotFound, @"no end of headers through SOCKS");
  NSUInteger at = hdr.location + hdr.length;
  check([[all subdataWithRange:NSMakeRange(at, [all length] - at)] writeToFile:path atomically:NO], @"write socks.bin");
}

int main(int argc, char **argv) {
  init_seq();
  mainThread = pthread_self();
  NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
  if (argc != 5) {
    fail(@"usage: main AUTHORITIES_FILE DATA_DIR HOST:PORT OUT_DIR");
  }
  NSString *authorities = [NSString stringWithContentsOfFile:[NSString stringWithUTF8String:argv[1]]
                                                    encoding:NSUTF8StringEncoding
                                                       error:NULL];
  check(authorities != nil, @"read the authorities file");
  NSString *dataDir = [NSString stringWithUTF8String:argv[2]];
  NSString *target = [NSString stringWithUTF8String:argv[3]];
  NSString *outDir = [NSString stringWithUTF8String:argv[4]];
  NSRange colon = [target rangeOfString:@":" options:NSBackwardsSearch];
  NSString *host = [target substringToIndex:colon.location];
  int64_t port = [[target substringFromIndex:colon.location + 1] longLongValue];
  NSError *err = nil;

  // A bad Config fails with kind config.
  OnionliteConfig *bad = [[OnionliteConfig alloc] init];
  OnionliteClient *none = OnionliteNewClient(bad, &err);
  check(none == nil && err != nil && [kindOf(err) isEqualToString:OnionliteKindConfig],
        [NSString stringWithFormat:@"bad config: %@", err]);
  err = nil;

  Logger *logger = [[Logger alloc] init];
  OnionliteConfig *cfg = [[OnionliteConfig alloc] init];
  cfg.dataDir = dataDir;
  cfg.authorities = authorities;
  cfg.testNetwork = YES;
  cfg.logLevel = OnionliteLogInfo;
  cfg.logger = logger;
  check([cfg.dataDir isEqualToString:dataDir], @"Config getter");
  OnionliteClient *client = OnionliteNewClient(cfg, &err);
  check(client != nil && err == nil, [NSString stringWithFormat:@"NewClient: %@", err]);

  Listener *listener = [[Listener alloc] init];
  check([client bootstrap:listener error:&err], [NSString stringWithFormat:@"bootstrap: %@", err]);
  check(listener->onMain == 0, @"progress delivered on the calling thread");
  check(listener->count >= 2, [NSString stringWithFormat:@"only %d progress reports", listener->count]);
  check([listener->last hasPrefix:@"ready 100 "], [NSString stringWithFormat:@"last progress %@", listener->last]);
  check([client isReady], @"not ready after bootstrap");
  printf("progress %d last %s\n", listener->count, [listener->last UTF8String]);

  // The SOCKS port. startSOCKS returns a non-null string, so Swift sees
  // an NSError out-parameter here rather than a throwing method.
  NSString *socks = [client startSOCKS:@"127.0.0.1:0" error:&err];
  check(err == nil && [socks hasPrefix:@"127.0.0.1:"], [NSString stringWithFormat:@"startSOCKS: %@ %@", socks, err]);
  int socksPort = [[socks substringFromIndex:[socks rangeOfString:@":" options:NSBackwardsSearch].location + 1] intValue];
  socksFetch(socksPort, target, [outDir stringByAppendingPathComponent:@"socks.bin"]);
  printf("socks-file socks.bin\n");

  // A direct stream with bounded reads until kind eof.
  OnionliteStream *s = [client dial:host port:port error:&err];
  check(s != nil, [NSString stringWithFormat:@"dial: %@", err]);
  check([s setDeadline:120000 error:&err], @"setDeadline");
  NSData *req = [[NSString stringWithFormat:@"GET /1MiB.bin HTTP/1.0\r\nHost: %@\r\n\r\n", target]
      dataUsingEncoding:NSASCIIStringEncoding];
  int64_t written = 0;
  check([s write:req written:&written error:&err] && written == (int64_t)[req length],
        [NSString stringWithFormat:@"write: %lld %@", (long long)written, err]);
  NSMutableData *resp = [NSMutableData data];
  int reads = 0;
  for (;;) {
    NSAutoreleasePool *inner = [[NSAutoreleasePool alloc] init];
    NSError *rerr = nil;
    NSData *d = [s read:4096 error:&rerr];
    if (d == nil) {
      check([kindOf(rerr) isEqualToString:OnionliteKindEOF], [NSString stringWithFormat:@"read: %@", rerr]);
      [inner drain];
      break;
    }
    check([d length] > 0 && [d length] <= 4096, [NSString stringWithFormat:@"read returned %lu bytes",
                                                                           (unsigned long)[d length]]);
    [resp appendData:d];
    reads++;
    [inner drain];
  }
  check([s close:&err], @"close");
  NSData *sep = [@"\r\n\r\n" dataUsingEncoding:NSASCIIStringEncoding];
  NSRange hdr = [resp rangeOfData:sep options:0 range:NSMakeRange(0, [resp length])];
  check(hdr.location != NSNotFound, @"no end of headers on the stream");
  NSUInteger at = hdr.location + hdr.length;
  check([[resp subdataWithRange:NSMakeRange(at, [resp length] - at)]
            writeToFile:[outDir stringByAppendingPathComponent:@"stream.bin"]
             atomically:NO],
        @"write stream.bin");
  printf("stream-file stream.bin %d reads\n", reads);

  // Download into a file.
  int64_t size = 0;
  check([client download:[NSString stringWithFormat:@"http://%@/1MiB.bin", target]
                    path:[outDir stringByAppendingPathComponent:@"download.bin"]
                    size:&size
                   error:&err],
        [NSString stringWithFormat:@"download: %@", err]);
  printf("download-file download.bin %lld\n", (long long)size);

  // Errors carry their kind.
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in la;
  memset(&la, 0, sizeof la);
  la.sin_family = AF_INET;
  la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t ll = sizeof la;
  check(bind(lfd, (struct sockaddr *)&la, sizeof la) == 0 && getsockname(lfd, (struct sockaddr *)&la, &ll) == 0,
        @"pick a closed port");
  close(lfd);
  err = nil;
  check([client dial:@"127.0.0.1" port:ntohs(la.sin_port) error:&err] == nil &&
            [kindOf(err) isEqualToString:OnionliteKindExitRefused],
        [NSString stringWithFormat:@"dial to a closed port: %@", err]);
  err = nil;
  check([client dial:host port:70000 error:&err] == nil && [kindOf(err) isEqualToString:OnionliteKindBadAddress],
        [NSString stringWithFormat:@"dial to port 70000: %@", err]);
  err = nil;

  // Lifecycle calls and stats.
  [client setDormant:YES];
  check([client trimMemory:OnionliteTrimCritical] >= 0, @"trimMemory");
  [client setDormant:NO];
  [client networkChanged];
  NSString *stats = [client statsJSON];
  check([stats rangeOfString:@"\"ready\":true"].location != NSNotFound, stats);
  printf("stats %s\n", [stats UTF8String]);

  // Stop, then again.
  check([client stop:&err], [NSString stringWithFormat:@"stop: %@", err]);
  check(![client stop:&err] && [kindOf(err) isEqualToString:OnionliteKindClosed],
        [NSString stringWithFormat:@"second stop: %@", err]);
  check([logger saw:@"objc listener says no" level:OnionliteLogWarn], @"the listener's error was not logged");
  check([logger saw:@"ready" level:OnionliteLogInfo], @"no ready log line");
  printf("OK\n");
  fflush(stdout);
  [pool drain];
  return 0;
}
