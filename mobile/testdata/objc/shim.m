// GNUstep's NSString lacks the method gobind's glue uses to turn strings
// into UTF-8 (Apple's Foundation has it). This category supplies enough of
// it for the glue: the glue calls it without a declaration in sight, so
// the scalar arguments arrive as 32-bit values, which is why they are
// narrowed here.
#import <Foundation/Foundation.h>
#include <string.h>

@implementation NSString (OnionliteGNUstepShim)
- (BOOL)getBytes:(void *)buffer
           maxLength:(NSUInteger)maxLength
          usedLength:(NSUInteger *)usedLength
            encoding:(NSStringEncoding)encoding
             options:(NSUInteger)options
               range:(NSRange)range
      remainingRange:(NSRangePointer)remaining {
  NSData *d = [[self substringWithRange:range] dataUsingEncoding:(unsigned int)encoding];
  NSUInteger n = [d length];
  if (n > (unsigned int)maxLength) {
    n = (unsigned int)maxLength;
  }
  memcpy(buffer, [d bytes], n);
  if (usedLength) {
    *usedLength = n;
  }
  if (remaining) {
    *remaining = NSMakeRange(range.location + range.length, 0);
  }
  return YES;
}
@end
