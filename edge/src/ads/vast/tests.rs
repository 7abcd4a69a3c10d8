use super::*;

const INLINE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.2" xmlns="http://www.iab.com/VAST">
  <Ad id="ad-1" sequence="1">
    <InLine>
      <AdSystem version="1">test</AdSystem>
      <AdTitle>One</AdTitle>
      <Impression id="i1"><![CDATA[ https://ads.example/imp?ad=1&x=[CACHEBUSTING] ]]></Impression>
      <Error>https://ads.example/err?code=[ERRORCODE]&amp;ad=1</Error>
      <Creatives>
        <Creative id="c1" adId="creative-1">
          <UniversalAdId idRegistry="Ad-ID" idValue="8465">8465</UniversalAdId>
          <Linear>
            <Duration>00:00:05.500</Duration>
            <TrackingEvents>
              <Tracking event="start">https://ads.example/start?ad=1</Tracking>
              <Tracking event="firstQuartile">https://ads.example/q1?ad=1</Tracking>
              <Tracking event="midpoint">https://ads.example/mid?ad=1</Tracking>
              <Tracking event="thirdQuartile">https://ads.example/q3?ad=1</Tracking>
              <Tracking event="complete">https://ads.example/complete?ad=1</Tracking>
              <Tracking event="start">javascript:alert(1)</Tracking>
            </TrackingEvents>
            <MediaFiles>
              <MediaFile delivery="progressive" type="video/mp4" width="1280" height="720" bitrate="2000">
                <![CDATA[https://cdn.example/ad1-720.mp4]]>
              </MediaFile>
              <MediaFile delivery="streaming" type="application/x-mpegURL" width="0" height="0">https://cdn.example/ad1.m3u8</MediaFile>
            </MediaFiles>
          </Linear>
        </Creative>
      </Creatives>
    </InLine>
  </Ad>
  <Ad id="ad-2" sequence="2">
    <Wrapper>
      <AdSystem>wrap</AdSystem>
      <VASTAdTagURI><![CDATA[https://wrapper.example/vast?id=2]]></VASTAdTagURI>
      <Impression>https://wrapper.example/imp</Impression>
      <Error>https://wrapper.example/err</Error>
      <Creatives><Creative><Linear><TrackingEvents>
        <Tracking event="complete">https://wrapper.example/complete</Tracking>
      </TrackingEvents></Linear></Creative></Creatives>
    </Wrapper>
  </Ad>
  <Ad id="standalone"><InLine><Creatives><Creative><Linear><Duration>00:00:30</Duration></Linear></Creative></Creatives></InLine></Ad>
</VAST>"#;

const WRAPPED: &str = r#"<VAST version="3.0"><Ad id="real-2"><InLine>
  <Impression>https://ads.example/imp?ad=2</Impression>
  <Creatives><Creative id="c2"><Linear>
    <Duration>00:00:04</Duration>
    <TrackingEvents><Tracking event="complete">https://ads.example/complete?ad=2</Tracking></TrackingEvents>
    <MediaFiles><MediaFile delivery="progressive" type="video/mp4" width="640" height="360">https://cdn.example/ad2.mp4</MediaFile></MediaFiles>
  </Linear></Creative></Creatives>
</InLine></Ad></VAST>"#;

#[test]
fn an_inline_ad_is_read_with_its_media_and_tracking() {
    let v = parse(INLINE).unwrap();
    assert_eq!(v.version, "4.2");
    assert_eq!(v.ads.len(), 3);
    let a = &v.ads[0];
    assert_eq!(a.id, "ad-1");
    assert_eq!(a.sequence, Some(1));
    assert_eq!(
        a.impressions,
        vec!["https://ads.example/imp?ad=1&x=[CACHEBUSTING]".to_string()]
    );
    assert_eq!(
        a.errors,
        vec!["https://ads.example/err?code=[ERRORCODE]&ad=1".to_string()]
    );
    // javascript: is not a URL Brook fires.
    assert_eq!(
        a.tracking["start"],
        vec!["https://ads.example/start?ad=1".to_string()]
    );
    assert_eq!(a.tracking.len(), 5);
    let AdKind::InLine {
        duration_ms,
        media_files,
        creative_id,
    } = &a.kind
    else {
        panic!("{:?}", a.kind)
    };
    assert_eq!(*duration_ms, 5500);
    assert_eq!(creative_id, "creative-1");
    assert_eq!(media_files.len(), 2);
    assert_eq!(media_files[0].url, "https://cdn.example/ad1-720.mp4");
    assert_eq!(
        (
            media_files[0].width,
            media_files[0].height,
            media_files[0].bitrate_kbps
        ),
        (1280, 720, 2000)
    );
    assert_eq!(
        v.ads[1].kind,
        AdKind::Wrapper {
            ad_tag_uri: "https://wrapper.example/vast?id=2".into()
        }
    );
}

#[test]
fn wrappers_are_followed_and_add_their_tracking_and_the_pod_keeps_its_order() {
    let v = parse(INLINE).unwrap();
    let mut r = Resolver::new(&v, 3, 5);
    let f = r.next_fetch().unwrap();
    assert_eq!(f.url, "https://wrapper.example/vast?id=2");
    assert!(r.next_fetch().is_none(), "asked once");
    assert!(!r.is_done());
    r.answer(f.id, Ok(WRAPPED));
    assert!(r.is_done());
    let pod = r.finish();
    // The stand-alone ad is not part of a pod with sequences.
    let ids: Vec<&str> = pod.ads.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, vec!["ad-1", "real-2"]);
    let two = &pod.ads[1];
    assert_eq!(two.duration_ms, 4000);
    assert_eq!(
        two.impressions,
        vec![
            "https://wrapper.example/imp".to_string(),
            "https://ads.example/imp?ad=2".to_string()
        ]
    );
    assert_eq!(
        two.tracking["complete"],
        vec![
            "https://wrapper.example/complete".to_string(),
            "https://ads.example/complete?ad=2".to_string()
        ]
    );
    assert!(pod.failures.is_empty());
}

#[test]
fn failed_deep_or_unanswered_wrappers_drop_their_ad_and_say_why() {
    let v = parse(INLINE).unwrap();
    // A wrapper answering with another wrapper, past the depth limit.
    let mut r = Resolver::new(&v, 1, 5);
    let f = r.next_fetch().unwrap();
    r.answer(f.id, Ok(r#"<VAST version="4.0"><Ad><Wrapper><VASTAdTagURI>https://x.example/v</VASTAdTagURI><Error>https://x.example/e</Error></Wrapper></Ad></VAST>"#));
    let pod = r.finish();
    assert_eq!(pod.ads.len(), 1);
    assert!(
        pod.failures[0].contains("wrapper limit"),
        "{:?}",
        pod.failures
    );
    // Both wrappers' error URLs, with the wrapper limit's code.
    assert!(pod.error_urls.contains(&(
        code::WRAPPER_LIMIT,
        "https://wrapper.example/err".to_string()
    )));
    assert!(pod
        .error_urls
        .contains(&(code::WRAPPER_LIMIT, "https://x.example/e".to_string())));

    let mut r = Resolver::new(&v, 3, 5);
    let f = r.next_fetch().unwrap();
    r.answer(f.id, Err("timed out after 800 ms".into()));
    let pod = r.finish();
    assert_eq!(pod.ads.len(), 1);
    assert!(pod.failures[0].contains("timed out"));
    assert!(pod
        .error_urls
        .iter()
        .all(|(c, _)| *c == code::WRAPPER_TIMEOUT));
    assert!(!pod.error_urls.is_empty());

    let mut r = Resolver::new(&v, 3, 5);
    let _ = r.next_fetch().unwrap();
    let pod = r.finish();
    assert!(pod.failures[0].contains("not answered in time"));

    let mut r = Resolver::new(&v, 3, 5);
    let f = r.next_fetch().unwrap();
    r.answer(f.id, Ok("<html>oops</html>"));
    let pod = r.finish();
    assert!(pod.failures[0].contains("not a VAST"));
    assert!(pod.error_urls.iter().all(|(c, _)| *c == code::SCHEMA));
}

#[test]
fn empty_and_hostile_documents_are_errors_or_no_ads_never_panics() {
    let empty = parse(r#"<VAST version="4.1"><Error><![CDATA[https://ads.example/noad?code=[ERRORCODE]]]></Error></VAST>"#).unwrap();
    assert!(empty.ads.is_empty());
    assert_eq!(
        empty.errors,
        vec!["https://ads.example/noad?code=[ERRORCODE]".to_string()]
    );
    let pod = Resolver::new(&empty, 3, 5).finish();
    assert!(pod.ads.is_empty());
    assert_eq!(
        pod.error_urls,
        vec![(
            code::NO_ADS,
            "https://ads.example/noad?code=[ERRORCODE]".to_string()
        )]
    );
    assert_eq!(
        parse(r#"<!DOCTYPE VAST [<!ENTITY x "y">]><VAST/>"#),
        Err(VastError::Dtd)
    );
    assert_eq!(
        parse(r#"<VAST><Ad><InLine><AdTitle>&x;</AdTitle></InLine></Ad></VAST>"#),
        Err(VastError::Dtd)
    );
    assert!(matches!(parse("<VMAP/>"), Err(VastError::NotVast(_))));
    assert!(matches!(parse(""), Err(VastError::NotVast(_))));
    assert!(matches!(
        parse("<VAST><Ad>"),
        Ok(_) | Err(VastError::Xml(_))
    ));
    assert_eq!(
        parse(&"x".repeat(MAX_DOCUMENT_BYTES + 1)),
        Err(VastError::TooLarge)
    );
    // A linear ad without a duration cannot be placed.
    let v = parse(r#"<VAST><Ad id="a"><InLine><Creatives><Creative><Linear><Duration>5s</Duration></Linear></Creative></Creatives></InLine></Ad></VAST>"#).unwrap();
    assert_eq!(v.ads[0].kind, AdKind::Unplayable);
}

#[test]
fn durations() {
    assert_eq!(parse_duration("00:00:30"), Some(30_000));
    assert_eq!(parse_duration(" 01:02:03.4 "), Some(3_723_400));
    assert_eq!(parse_duration("00:00:05.250"), Some(5_250));
    for bad in [
        "",
        "30",
        "00:60:00",
        "00:00:5x",
        "00:00:05.1234",
        "-1:00:00",
        "00:00:00:00",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn the_roots_error_url_is_only_for_an_answer_without_ads() {
    let with_ad = parse(
        r#"<VAST version="4.0"><Error>https://ads.example/root-err</Error><Ad id="a"><InLine><AdSystem>x</AdSystem><Creatives><Creative><Linear><Duration>00:00:05</Duration><MediaFiles><MediaFile delivery="progressive" type="video/mp4" width="640" height="360">https://ads.example/a.mp4</MediaFile></MediaFiles></Linear></Creative></Creatives></InLine></Ad></VAST>"#,
    )
    .unwrap();
    let pod = Resolver::new(&with_ad, 3, 5).finish();
    assert_eq!(pod.ads.len(), 1);
    assert!(pod.error_urls.is_empty(), "{:?}", pod.error_urls);
}
