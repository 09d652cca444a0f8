package Test::Nginx::Socket;

# A small Test::Nginx::Socket-compatible runner: test files written for
# openresty's Test::Nginx (block format, same section names, same test
# names) run unchanged with it.  This file sends the requests and checks
# the responses; Test::Nginx::Util runs nginx.  See t/lib/README.

use strict;
use warnings;

use Test::Base -base;

use Errno qw(EAGAIN EINTR);
use HTTP::Response;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

use Test::Nginx::Util;

our @EXPORT = (@Test::Nginx::Util::EXPORT, qw(
    add_response_body_check no_check_leak
));

our @ResponseBodyChecks;

$Test::Nginx::Util::RunTestHelper = \&run_test_helper;


sub add_response_body_check { push @ResponseBodyChecks, shift }

# upstream's leak-check mode is not supported; accepted and ignored
sub no_check_leak { }


# "GET /t" [+ body lines] -> a full request with Host and Connection
sub build_request {
    my ($name, $text, $more_headers, $conn) = @_;

    $text =~ s/^(?:\s*#[^\n]*\n|\s+)+//;
    my ($first, $body) = split /\n/, $text, 2;
    $body //= '';

    $first =~ /^(\S+)(?:[ \t]+(\S+))?(?:[ \t]+(\S+))?\s*$/
        or die "$name - Request line is not valid: \"$first\"\n";
    my ($meth, $url, $ver) = ($1, $2 // '/', $3 // 'HTTP/1.1');

    my ($hdrs, $chunked) = ('', 0);
    for my $h (split /\n+/, $more_headers // '') {
        next if $h =~ /^\s*#/ || $h !~ /\S/;
        my ($k, $v) = split /:\s*/, $h, 2;
        $v //= '';
        $chunked = 1 if lc $k eq 'transfer-encoding' && $v eq 'chunked';
        $hdrs .= "$k: $v\r\n";
    }

    my $len = '';
    if (!$chunked && $body ne '' && $hdrs !~ /(?:^|\n)Content-Length:/i) {
        $body =~ s/^\s+|\s+$//g;
        $len = 'Content-Length: ' . length($body) . "\r\n";
    }

    my $std = '';
    $std .= "Host: $Test::Nginx::Util::ServerName\r\n"
        if $hdrs !~ /(?:^|\n)Host:/i;
    $std .= "Connection: $conn\r\n" if $hdrs !~ /(?:^|\n)Connection/i;

    return "$meth $url $ver\r\n$std$hdrs$len\r\n$body";
}


# the list of requests of a block: each one string sent on its own
# connection (pipelined requests are one string)
sub block_requests {
    my ($block) = @_;
    my $name = $block->name;
    my $more = $block->more_headers;

    if (defined $block->raw_request) {
        my $raw = $block->raw_request;
        return [ref $raw ? join('', @$raw) : $raw];
    }

    if (defined(my $reqs = $block->pipelined_requests)) {
        die "$name - --- pipelined_requests must be an array\n"
            if ref $reqs ne 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my $hdr = ref $more ? $more->[$i] : $more;
            $all .= build_request($name, $reqs->[$i], $hdr,
                                  $i == $#$reqs ? 'close' : 'keep-alive');
        }
        return [$all];
    }

    my $req = $block->request;
    die "$name - no --- request\n" if !defined $req;
    return [map { build_request($name, $_, $more, 'close') }
                ref $req ? @$req : ($req)];
}


# Sends one request and reads until the server closes or the time is up.
# Returns (raw response, timed out?).
sub send_request {
    my ($req, $timeout, $name) = @_;
    my $deadline = time + $timeout;
    my ($sock, $resp, $off) = (undef, '', 0);
    my $port = $Test::Nginx::Util::ServerPortForClient;

    # nginx under valgrind may take a while before it accepts
    while (1) {
        $sock = IO::Socket::INET->new(PeerAddr => $Test::Nginx::Util::ServerAddr,
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => $timeout);
        last if $sock;
        if (time >= $deadline) {
            Test::More::fail("$name - Can't connect to port $port: $!");
            return ('', 0);
        }
        sleep 0.05;
    }

    $sock->blocking(0);
    my $sel = IO::Select->new($sock);

    while ($off < length $req) {
        my $left = $deadline - time;
        return ($resp, 1) if $left <= 0;
        next if !$sel->can_write($left);
        my $n = syswrite $sock, $req, length($req) - $off, $off;
        if (!defined $n) {
            next if $! == EAGAIN || $! == EINTR;
            warn "WARNING: $name - write failed: $!\n";
            last;
        }
        $off += $n;
    }

    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) {
            close $sock;
            return ($resp, 1);
        }
        next if !$sel->can_read($left);
        my $n = sysread $sock, my $buf, 65536;
        if (!defined $n) {
            next if $! == EAGAIN || $! == EINTR;
            warn "WARNING: $name - HTTP response read failure: $!\n";
            last;
        }
        last if $n == 0;
        $resp .= $buf;
    }

    close $sock;
    return ($resp, 0);
}


# Decodes a chunked body; returns (body, rest after it, error or undef).
# A body cut short (by a timeout) yields the complete chunks and an error.
sub dechunk {
    my ($raw) = @_;
    my $body = '';

    while (1) {
        if ($raw !~ /\G[ \t]*([0-9A-Fa-f]+)[^\r\n]*\r\n/gc) {
            return ($body, '', 'no last chunk found');
        }
        my $size = hex $1;
        my $pos = pos $raw;
        if ($size == 0) {
            # no trailers expected: the blank line ends the body
            $raw =~ /\G(?:[^\r\n]+\r\n)*\r\n/gc
                or return ($body, '', 'no CRLF after the last chunk');
            return ($body, substr($raw, pos $raw), undef);
        }
        if (length($raw) < $pos + $size + 2) {
            return ($body, '', 'not enough octets for the data section');
        }
        $body .= substr $raw, $pos, $size;
        return ($body, '', 'expected CRLF after a chunk')
            if substr($raw, $pos + $size, 2) ne "\r\n";
        pos($raw) = $pos + $size + 2;
    }
}


# Parses one response off the front of $raw.
# Returns (HTTP::Response or undef, raw headers, what follows it).
sub parse_response {
    my ($name, $raw, $head_req, $cut) = @_;

    return (undef, '', '') if $raw !~ /\r?\n\r?\n/;
    my $hlen = $+[0];
    my $raw_headers = substr $raw, 0, $hlen;
    my $rest = substr $raw, $hlen;

    my $res = HTTP::Response->parse($raw_headers);
    my $code = $res->code;
    $res->code(undef) if defined $code && $code !~ /^\d+$/;

    if ($head_req || (defined $code && $code =~ /^(?:1\d\d|204|304)$/)) {
        $res->content('');
        return ($res, $raw_headers, $rest);
    }

    my $te = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');

    if (defined $te && $te eq 'chunked') {
        my ($body, $left, $err) = dechunk($rest);
        if (defined $err && !$cut) {
            Test::More::fail("$name - invalid chunked body received: $err");
        }
        $res->content($body);
        return ($res, $raw_headers, $left);
    }

    if (defined $len && $len =~ /^\d+$/) {
        if (length $rest < $len) {
            warn "WARNING: $name - response body truncated: $len expected, "
                 . "but got " . length($rest) . "\n" if !$cut;
            $res->content($rest);
            return ($res, $raw_headers, '');
        }
        $res->content(substr $rest, 0, $len);
        return ($res, $raw_headers, substr($rest, $len));
    }

    # close-delimited: everything up to EOF (or the timeout)
    $res->content($rest);
    return ($res, $raw_headers, '');
}


# a section value for the req_idx-th request when a block sends several;
# as upstream: a block of several requests (or pipelined ones) must give
# every expected section as an array, or the whole run stops
sub indexed {
    my ($name, $value, $idx, $need_array) = @_;

    if ($need_array) {
        return $value->[$idx] if ref $value eq 'ARRAY';
        Test::Nginx::Util::bail_out("$name - You asked for many requests, "
            . "the expected results should be arrays as well.");
    }

    return ref $value eq 'ARRAY' ? $value->[0] : $value;
}


sub printable {
    my ($s, $max) = @_;

    return '' if !defined $s;
    $s = substr($s, 0, $max) . '...' if defined $max && length $s > $max;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    $s =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
    return $s;
}


# is() that, for long or binary strings, shows where they differ
sub is_str {
    my ($got, $want, $desc) = @_;

    if ($Test::Nginx::Util::NoLongString || !defined $got || !defined $want
        || (length($got) < 200 && length($want) < 200
            && "$got$want" !~ /[^\n\t\x20-\x7e]/))
    {
        return Test::More::is($got, $want, $desc);
    }

    return Test::More::pass($desc) if $got eq $want;

    my $i = 0;
    $i++ while $i < length($got) && $i < length($want)
               && substr($got, $i, 1) eq substr($want, $i, 1);
    Test::More::fail($desc);
    Test::More::diag(sprintf "got %d bytes, expected %d; they differ at "
                     . "offset %d:\n     got: \"%s\"\nexpected: \"%s\"",
                     length $got, length $want, $i,
                     printable(substr($got, $i), 60),
                     printable(substr($want, $i), 60));
    return 0;
}


sub check_error_code {
    my ($block, $res, $idx, $need) = @_;
    my $name = $block->name;
    my $code = ($res && $res->code) || '';

    if (defined $block->error_code_like) {
        my $pat = indexed($name, $block->error_code_like, $idx, $need);
        Test::More::like($code, qr/$pat/sm, "$name - status code ok");
        return;
    }

    my $want = defined $block->error_code
             ? indexed($name, $block->error_code, $idx, $need) : 200;
    Test::More::is($code, $want, "$name - status code ok");
}


# "Name: value" lines; "!Name" means the header must be absent
sub parse_headers {
    my ($text) = @_;
    my @pairs;

    for my $line (split /\n/, $text // '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) {
            push @pairs, [$line, undef];
        } else {
            my ($k, $v) = split /\s*:\s*/, $line, 2;
            push @pairs, [$k, $v // ''];
        }
    }

    return @pairs;
}


sub check_headers {
    my ($block, $res, $raw_headers, $idx, $need) = @_;
    my $name = $block->name;
    my $port = $Test::Nginx::Util::ServerPort;

    if (defined(my $pat = $block->raw_response_headers_like)) {
        $pat = indexed($name, $pat, $idx, $need);
        Test::More::like($raw_headers, qr/$pat/s,
                         "$name - raw resp headers like");
    }

    if (defined(my $pat = $block->raw_response_headers_unlike)) {
        $pat = indexed($name, $pat, $idx, $need);
        Test::More::unlike($raw_headers, qr/$pat/s,
                           "$name - raw resp headers unlike");
    }

    if (defined $block->response_headers) {
        for my $h (parse_headers(indexed($name, $block->response_headers,
                                         $idx, $need)))
        {
            my ($key, $val) = @$h;
            if (!defined $val) {
                Test::More::unlike($raw_headers, qr/^\s*\Q$key\E\s*:/msi,
                    "$name - header $key not present in the raw headers");
                next;
            }
            $val =~ s/\$ServerPort\b/$port/g;
            my $got = $res ? $res->header($key) : undef;
            Test::More::is($got // '', $val, "$name - header $key ok");
        }

    } elsif (defined $block->response_headers_like) {
        for my $h (parse_headers(indexed($name, $block->response_headers_like,
                                         $idx, $need)))
        {
            my ($key, $val) = @$h;
            my $got = $res ? $res->header($key) : undef;
            Test::More::like($got // '', qr/^$val$/,
                             "$name - header $key like ok");
        }
    }
}


sub check_body {
    my ($block, $res, $idx, $rep, $need) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;
    my $port = $Test::Nginx::Util::ServerPort;

    if (defined $block->response_body) {
        my $want = indexed($name, $block->response_body, $idx, $need);
        if (ref $want) {
            Test::More::like($content, $want,
                             "$name - response_body - like (req $rep)");
        } else {
            $want =~ s/\$ServerPort\b/$port/g;
            is_str($content, $want,
                   "$name - response_body - response is expected (req $rep)");
        }

    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $pat = indexed($name, $type eq 'like' ? $block->response_body_like
                                                 : $block->response_body_unlike,
                          $idx, $need);
        $pat =~ s/\$ServerPort\b/$port/g if !ref $pat;
        my $summary = $content // '';
        $summary =~ s/^\s+|\s+$//g;
        $summary =~ s/\s+/ /g;
        my $desc = "$name - response_body_$type - response is expected ("
                   . printable($summary, 60) . ")";
        if ($type eq 'like') {
            Test::More::like($content, qr/$pat/s, $desc);
        } else {
            Test::More::unlike($content, qr/$pat/s, $desc);
        }
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $content, $idx, $rep, 0);
    }
}


# "--- error_log" and "--- no_error_log": lines (substrings) or an
# eval'ed array of strings and qr// patterns
sub patterns {
    my ($pats) = @_;

    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats] if ref $pats;
    chomp $pats;
    return [split /\n+/, $pats];
}


sub line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}


sub check_error_log {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my $lines;
    my %warn_levels = map { $_ => 1 } qw(alert crit emerg);

    if (defined $block->error_log) {
        my $pats = patterns($block->error_log);
        $lines ||= Test::Nginx::Util::error_log_data();
        for my $pat (@$pats) {
            delete $warn_levels{$1}
                if !ref $pat && $pat =~ /\[(alert|crit|emerg)/;
            my $found = grep { line_matches($_, $pat) } @$lines;
            Test::More::ok($found, "$name - pattern \"" . printable("$pat")
                           . "\" matches a line in error.log (req $rep)");
        }
    }

    if (defined $block->no_error_log) {
        my $pats = patterns($block->no_error_log);
        $lines ||= Test::Nginx::Util::error_log_data();
        for my $pat (@$pats) {
            delete $warn_levels{$1}
                if !ref $pat && $pat =~ /\[(alert|crit|emerg)/;
            my ($hit) = grep { line_matches($_, $pat) } @$lines;
            my $p = printable("$pat");
            if (defined $hit) {
                Test::More::fail("$name - pattern \"$p\" should not match any "
                                 . "line in error.log but matches line \""
                                 . printable($hit =~ s/\n\z//r)
                                 . "\" (req $rep)");
            } else {
                Test::More::pass("$name - pattern \"$p\" does not match a "
                                 . "line in error.log (req $rep)");
            }
        }
    }

    # like upstream: report serious lines nobody asked about
    $lines ||= Test::Nginx::Util::error_log_data();
    for my $line (@$lines) {
        if ($line =~ /\[(alert|crit|emerg)\]/ && $warn_levels{$1}) {
            warn "WARNING: $name - " . printable($line =~ s/\n\z//r) . "\n";
        }
    }
}


sub run_test_helper {
    my ($block, $dry_run, $rep) = @_;
    my $name = $block->name;
    my $reqs = eval { block_requests($block) };

    if (!$reqs) {
        Test::More::fail($@);
        return;
    }

    my $timeout = Test::Nginx::Util::parse_time($block->timeout)
                  // Test::Nginx::Util::timeout();
    my $npipe = $block->pipelined_requests ? @{$block->pipelined_requests} : 0;
    my $need = $npipe || @$reqs > 1;
    my $idx = 0;

    for my $r (0 .. $#$reqs) {
        my $head_req = $reqs->[$r] =~ /^\s*HEAD\s/ ? 1 : 0;
        my ($raw, $cut) = send_request($reqs->[$r], $timeout, $name);

        if ($cut && !defined $block->abort) {
            Test::More::fail("ERROR: client socket timed out - $name");
        }

        for (1 .. ($npipe || 1)) {
            my ($res, $raw_headers, $left)
                = parse_response($name, $raw, $head_req, $cut);

            if (!defined $block->ignore_response) {
                check_error_code($block, $res, $idx, $need);
                check_headers($block, $res, $raw_headers, $idx, $need);
                check_body($block, $res, $idx, $rep, $need);
            }

            $raw = $left;
            $idx++;
        }

        if ($r < $#$reqs) {
            sleep Test::Nginx::Util::parse_time($block->wait) if $block->wait;
            check_error_log($block, $rep);
        }
    }

    sleep Test::Nginx::Util::parse_time($block->wait) if $block->wait;
    check_error_log($block, $rep);
}

1;
